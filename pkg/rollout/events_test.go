package rollout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTextSink(t *testing.T) {
	var b bytes.Buffer
	s := NewTextSink(&b)
	at := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	for _, e := range []Event{
		{Time: at, Node: "kaji", Step: StepDrain, Status: StatusStarted},
		{Time: at, Node: "kaji", Step: StepInstall, Status: StatusOutput, Message: "building..."},
		{Time: at, Node: "kaji", Step: StepDrain, Status: StatusSucceeded, ElapsedSeconds: 4.24, Message: "3 pod(s) evicted"},
		{Time: at, Node: "kaji", Step: StepInstall, Status: StatusFailed, ElapsedSeconds: 1, Message: "boom", Rollback: "kubectl nerv node rollback kaji"},
		{Time: at, Step: StepPreflight, Status: StatusSucceeded},
		{Time: at, Step: StepRollout, Status: StatusFailed, ElapsedSeconds: 71, Message: "roll-out stopped: x"},
	} {
		s.Emit(e)
	}
	want := "[kaji] building...\n" +
		"kaji         drain     succeeded    4.2s  3 pod(s) evicted\n" +
		"kaji         install   failed         1s  boom\n" +
		"             to roll back: kubectl nerv node rollback kaji\n" +
		"cluster      preflight succeeded      0s\n" +
		"roll-out stopped: x (1m11s)\n"
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestJSONSinkOneObjectPerLine(t *testing.T) {
	var b bytes.Buffer
	s := NewJSONSink(&b)
	s.Emit(Event{Time: time.Unix(0, 0).UTC(), Node: "kaji", Step: StepInstall, Status: StatusFailed, ElapsedSeconds: 1.5, Message: "a\nb", Rollback: "kubectl nerv node rollback kaji"})
	s.Emit(Event{Time: time.Unix(0, 0).UTC(), Step: StepRollout, Status: StatusFailed})
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), b.String())
	}
	if lines[0] != `{"time":"1970-01-01T00:00:00Z","node":"kaji","step":"install","status":"failed","elapsedSeconds":1.5,"message":"a\nb","rollback":"kubectl nerv node rollback kaji"}` {
		t.Errorf("line 1 = %s", lines[0])
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["node"]; ok {
		t.Errorf("empty node not omitted: %s", lines[1])
	}
}

func TestLongStepReportsProgress(t *testing.T) {
	rec := &recorder{}
	r := &runner{o: Options{Sink: rec, ProgressInterval: 50 * time.Millisecond}}
	err := r.step(context.Background(), "kaji", StepReady, func(context.Context) (string, error) {
		time.Sleep(180 * time.Millisecond)
		return "", errors.New("late")
	})
	if err == nil {
		t.Fatal("step error lost")
	}
	var notes int
	for _, e := range rec.events {
		if e.Status == StatusOutput && e.Step == StepReady && strings.HasPrefix(e.Message, "still in ready after") {
			notes++
		}
	}
	if notes < 2 {
		t.Errorf("%d progress notes over 180ms at 50ms, want at least 2: %+v", notes, rec.events)
	}
	last := rec.events[len(rec.events)-1]
	if last.Status != StatusFailed || last.Rollback != "kubectl nerv node rollback kaji" {
		t.Errorf("last event %+v, want the failure with the rollback command", last)
	}
}
