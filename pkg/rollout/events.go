package rollout

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"
)

// Steps, in the order each node goes through them.
const (
	StepPreflight = "preflight" // node Ready, evictions allowed by PDBs, other servers Ready, doctor checks
	StepCordon    = "cordon"
	StepDrain     = "drain"
	StepInstall   = "install" // nixos-rebuild boot: build, copy, make the new generation the boot default
	StepKernel    = "kernel"  // compare the booted kernel with the new generation's, over SSH
	StepSwitch    = "switch"  // nixos-rebuild switch (kernel unchanged)
	StepReboot    = "reboot"  // reboot into the new generation (kernel changed)
	StepReady     = "ready"   // the node's kubelet is back (fresh lease, or new boot ID) and Ready
	StepUncordon  = "uncordon"
	StepCheck     = "check" // node Ready and schedulable, the doctor's kubernetes checks
	// StepRollout is the last event of a roll-out (no node): succeeded or failed, with the
	// total elapsed time.
	StepRollout = "rollout"
)

// StepNames is the per-node sequence as shown in plans; switch and reboot are alternatives.
var StepNames = []string{StepPreflight, StepCordon, StepDrain, StepInstall, StepKernel, StepSwitch + "|" + StepReboot, StepReady, StepUncordon, StepCheck}

// Event statuses.
const (
	StatusStarted   = "started"
	StatusSucceeded = "succeeded"
	StatusFailed    = "failed"
	StatusOutput    = "output" // a line of nixos-rebuild's output
)

// Event is one thing that happened during a roll-out. As JSON (one object per line with
// -o json) its fields are stable: see docs/nodes.md.
type Event struct {
	Time time.Time `json:"time"`
	// Node is empty for events about the whole roll-out.
	Node   string `json:"node,omitempty"`
	Step   string `json:"step,omitempty"`
	Status string `json:"status"`
	// ElapsedSeconds is the step's duration on succeeded and failed events, and the whole
	// roll-out's on the final event.
	ElapsedSeconds float64 `json:"elapsedSeconds,omitempty"`
	Message        string  `json:"message,omitempty"`
	// Rollback is the command that undoes a failed node's change, on failed events.
	Rollback string `json:"rollback,omitempty"`
}

// Sink receives events; implementations must be safe for concurrent use (agents in one
// batch roll in parallel).
type Sink interface {
	Emit(Event)
}

// JSONSink writes one JSON object per line.
type JSONSink struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewJSONSink writes events to w.
func NewJSONSink(w io.Writer) *JSONSink { return &JSONSink{enc: json.NewEncoder(w)} }

// Emit writes e as one line.
func (s *JSONSink) Emit(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	_ = s.enc.Encode(e)
}

// TextSink writes progress for people: a line per finished step with its duration, command
// output prefixed with "[NODE] ".
type TextSink struct {
	mu sync.Mutex
	w  io.Writer
}

// NewTextSink writes progress to w.
func NewTextSink(w io.Writer) *TextSink { return &TextSink{w: w} }

// Emit writes e as a line, or nothing for events a person does not need (step starts).
func (s *TextSink) Emit(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e.Status {
	case StatusOutput:
		if e.Node == "" {
			fmt.Fprintln(s.w, e.Message)
		} else {
			fmt.Fprintf(s.w, "[%s] %s\n", e.Node, e.Message)
		}
	case StatusStarted:
		// One line per step is enough; a step that takes long streams its own output.
	default:
		if e.Step == StepRollout {
			fmt.Fprintf(s.w, "%s (%s)\n", e.Message, seconds(e.ElapsedSeconds))
			return
		}
		node := e.Node
		if node == "" {
			node = "cluster"
		}
		line := fmt.Sprintf("%-12s %-9s %-9s %7s", node, e.Step, e.Status, seconds(e.ElapsedSeconds))
		if e.Message != "" {
			line += "  " + e.Message
		}
		fmt.Fprintln(s.w, line)
		if e.Rollback != "" {
			fmt.Fprintf(s.w, "%-12s to roll back: %s\n", "", e.Rollback)
		}
	}
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
}

// SinkFunc adapts a function to Sink.
type SinkFunc func(Event)

// Emit calls f.
func (f SinkFunc) Emit(e Event) { f(e) }
