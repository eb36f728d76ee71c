package sshclient

import (
	"bytes"
	"io"
	"sync"
)

// PrefixWriter writes every line it receives to an underlying writer with a prefix, e.g.
// "[nixos-anywhere] ", so streamed output from a remote or child process reads as its own.
// Partial lines are held until their newline or Flush. Safe for concurrent use.
type PrefixWriter struct {
	mu      sync.Mutex
	w       io.Writer
	prefix  []byte
	pending []byte
}

// NewPrefixWriter returns a PrefixWriter over w.
func NewPrefixWriter(w io.Writer, prefix string) *PrefixWriter {
	return &PrefixWriter{w: w, prefix: []byte(prefix)}
}

// Write prefixes each complete line in p and passes it on.
func (p *PrefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = append(p.pending, b...)
	var out []byte
	for {
		i := bytes.IndexByte(p.pending, '\n')
		if i < 0 {
			break
		}
		out = append(out, p.prefix...)
		out = append(out, trimCR(p.pending[:i])...)
		out = append(out, '\n')
		p.pending = p.pending[i+1:]
	}
	if len(out) > 0 {
		if _, err := p.w.Write(out); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// Flush writes a trailing partial line, newline-terminated.
func (p *PrefixWriter) Flush() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.pending) == 0 {
		return nil
	}
	line := append(append(append([]byte(nil), p.prefix...), trimCR(p.pending)...), '\n')
	p.pending = nil
	_, err := p.w.Write(line)
	return err
}

// trimCR drops a carriage return before the newline and progress-bar redraws (text up to
// the last \r), which would otherwise overwrite the prefix on a terminal.
func trimCR(line []byte) []byte {
	line = bytes.TrimRight(line, "\r")
	if i := bytes.LastIndexByte(line, '\r'); i >= 0 {
		line = line[i+1:]
	}
	return line
}
