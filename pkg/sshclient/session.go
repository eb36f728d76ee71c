package sshclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
)

// CommandError is a remote command that ran and failed (non-zero exit or killed).
type CommandError struct {
	Target string
	Cmd    string
	// Status is the exit status, -1 if the command died from a signal or the session broke.
	Status int
	// Stderr is the command's error output, trimmed (empty for Stream, which passes it on).
	Stderr string
	Err    error
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s on %s: ", firstLine(e.Cmd), e.Target)
	if e.Status >= 0 {
		msg += fmt.Sprintf("exit status %d", e.Status)
	} else {
		msg += e.Err.Error()
	}
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

// Result is a finished command's output.
type Result struct {
	Stdout []byte
	Stderr []byte
}

// Run runs cmd through the remote user's shell and captures its output. A non-zero exit is
// a *CommandError carrying the (trimmed) stderr; the Result is returned either way.
func (c *Client) Run(ctx context.Context, cmd string) (*Result, error) {
	var out, errb bytes.Buffer
	err := c.run(ctx, cmd, nil, &out, &errb)
	res := &Result{Stdout: out.Bytes(), Stderr: errb.Bytes()}
	var ce *CommandError
	if errors.As(err, &ce) {
		ce.Stderr = strings.TrimSpace(errb.String())
	}
	return res, err
}

// Output runs cmd and returns its stdout.
func (c *Client) Output(ctx context.Context, cmd string) ([]byte, error) {
	res, err := c.Run(ctx, cmd)
	return res.Stdout, err
}

// Stream runs cmd with stdout and stderr both written to w as they arrive (wrap w in a
// PrefixWriter to label the lines).
func (c *Client) Stream(ctx context.Context, cmd string, w io.Writer) error {
	return c.run(ctx, cmd, nil, w, w)
}

// ReadFile returns the content of a remote file (read with cat, which every target has).
func (c *Client) ReadFile(ctx context.Context, path string) ([]byte, error) {
	res, err := c.Run(ctx, "cat -- "+shellQuote(path))
	if err != nil {
		var ce *CommandError
		if errors.As(err, &ce) {
			return nil, fmt.Errorf("reading %s:%s: %s", c.Target(), path, ce.Stderr)
		}
		return nil, fmt.Errorf("reading %s:%s: %w", c.Target(), path, err)
	}
	return res.Stdout, nil
}

// run executes cmd in a new session. Cancelling ctx returns at once: the session is sent
// SIGTERM and closed, and nothing more is written to stdout/stderr. Whether the remote
// command stops depends on the server: OpenSSH ignores signal requests for root logins
// (no post-auth privilege separation), so a command that neither reads stdin nor writes
// output may run to its end. The commands NERV runs remotely are short and read-only.
func (c *Client) run(ctx context.Context, cmd string, stdin io.Reader, stdout, stderr io.Writer) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sess, err := c.conn.NewSession()
	if err != nil {
		return fmt.Errorf("opening an SSH session on %s: %w", c.Target(), err)
	}
	defer sess.Close()
	gate := &gate{}
	sess.Stdin = stdin
	if stdout != nil {
		sess.Stdout = gate.wrap(stdout)
	}
	if stderr != nil {
		sess.Stderr = gate.wrap(stderr)
	}
	// A writer shared by stdout and stderr (Stream) gets whole lines only, each stream
	// holding its own partial line: otherwise "three" on stdout and "two\n" on stderr could
	// arrive as one line "threetwo".
	var shared []*lineWriter
	if stdout == stderr && stdout != nil {
		shared = []*lineWriter{{w: gate.wrap(stdout)}, {w: gate.wrap(stdout)}}
		sess.Stdout, sess.Stderr = shared[0], shared[1]
	}
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		gate.shut()
		_ = sess.Signal(ssh.SIGTERM)
		_ = sess.Close()
		return fmt.Errorf("%s on %s: %w", firstLine(cmd), c.Target(), ctx.Err())
	}
	for _, lw := range shared {
		lw.flush() // Run has returned: both streams are drained
	}
	gate.shut()
	if err == nil {
		return nil
	}
	var exit *ssh.ExitError
	if errors.As(err, &exit) {
		status := exit.ExitStatus()
		if exit.Signal() != "" {
			status = -1
		}
		return &CommandError{Target: c.Target(), Cmd: cmd, Status: status, Err: err}
	}
	return &CommandError{Target: c.Target(), Cmd: cmd, Status: -1, Err: err}
}

// gate serialises writes to the caller's writers and stops them once run has returned, so
// a session still draining after a cancel never writes into a caller that has moved on.
type gate struct {
	mu     sync.Mutex
	closed bool
}

func (g *gate) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (g *gate) wrap(w io.Writer) io.Writer { return &gatedWriter{g: g, w: w} }

type gatedWriter struct {
	g *gate
	w io.Writer
}

func (gw *gatedWriter) Write(b []byte) (int, error) {
	gw.g.mu.Lock()
	defer gw.g.mu.Unlock()
	if gw.g.closed {
		return len(b), nil
	}
	return gw.w.Write(b)
}

// lineWriter passes on complete lines and holds a partial one until its newline or flush.
// ssh writes each stream from one goroutine, so it needs no lock of its own.
type lineWriter struct {
	w       io.Writer
	pending []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.pending = append(l.pending, b...)
	if i := bytes.LastIndexByte(l.pending, '\n'); i >= 0 {
		if _, err := l.w.Write(l.pending[:i+1]); err != nil {
			return 0, err
		}
		l.pending = append(l.pending[:0], l.pending[i+1:]...)
	}
	return len(b), nil
}

func (l *lineWriter) flush() {
	if len(l.pending) > 0 {
		_, _ = l.w.Write(l.pending)
		l.pending = nil
	}
}
