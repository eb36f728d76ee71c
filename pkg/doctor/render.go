package doctor

import (
	"bufio"
	"fmt"
	"io"
	"time"
)

// Marks shown per status in the table.
var marks = map[Status]string{
	StatusPass: "✔",
	StatusWarn: "⚠",
	StatusFail: "✖",
	StatusSkip: "○",
}

// ANSI colours per status; used only when the caller says the output is a terminal.
var colours = map[Status]string{
	StatusPass: "\x1b[32m",
	StatusWarn: "\x1b[33m",
	StatusFail: "\x1b[31m",
	StatusSkip: "\x1b[2m",
}

const (
	colourReset = "\x1b[0m"
	colourBold  = "\x1b[1m"
)

// RenderTable writes the report for people: results grouped by category, details, hint and
// docs link under each failure and warning, and a summary line.
func RenderTable(w io.Writer, r *Report, colour bool) error {
	bw := bufio.NewWriter(w)
	paint := func(code, s string) string {
		if !colour {
			return s
		}
		return code + s + colourReset
	}
	fmt.Fprintf(bw, "Cluster %s (%s)\n", r.Cluster.Server, orUnknown(r.Cluster.Version))
	for _, cat := range r.Categories {
		fmt.Fprintf(bw, "\n%s\n", paint(colourBold, cat))
		for _, res := range r.Results {
			if res.Category != cat {
				continue
			}
			line := fmt.Sprintf("  %s %s", paint(colours[res.Status], marks[res.Status]), res.Name)
			switch {
			case res.Status == StatusSkip:
				line += paint(colours[StatusSkip], " (skipped: "+res.Message+")")
			case res.Message != "":
				line += ": " + res.Message
			}
			fmt.Fprintln(bw, line)
			for _, d := range res.Details {
				fmt.Fprintf(bw, "      %s\n", d)
			}
			if res.Hint != "" {
				fmt.Fprintf(bw, "      %s %s\n", paint(colours[res.Status], "hint:"), res.Hint)
				fmt.Fprintf(bw, "      docs: %s\n", res.Docs)
			}
		}
	}
	s := r.Summary
	summary := fmt.Sprintf("%d passed, %d warnings, %d failed, %d skipped in %s",
		s.Passed, s.Warnings, s.Failed, s.Skipped, (time.Duration(r.DurationMillis) * time.Millisecond).Round(10*time.Millisecond))
	status := StatusPass
	switch {
	case s.Failed > 0:
		status = StatusFail
	case s.Warnings > 0:
		status = StatusWarn
	}
	fmt.Fprintf(bw, "\n%s %s\n", paint(colours[status], marks[status]), summary)
	return bw.Flush()
}
