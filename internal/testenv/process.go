package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// process is a child the environment owns: started in its own process group so that
// stopping it also stops anything it spawned, and killed with its parent (Pdeathsig) so that a
// crashed test binary leaves nothing running.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
	once sync.Once
}

func startProcess(name string, log io.Writer, path string, args ...string) (*process, error) {
	return startProcessEnv(name, log, path, nil, args...)
}

func startProcessEnv(name string, log io.Writer, path string, env []string, args ...string) (*process, error) {
	cmd := exec.Command(path, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout = log
	cmd.Stderr = log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, with its error.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// stop sends SIGTERM to the process group, then SIGKILL after the grace period.
func (p *process) stop(grace time.Duration) error {
	var err error
	p.once.Do(func() {
		pgid := -p.cmd.Process.Pid
		_ = syscall.Kill(pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			_ = syscall.Kill(pgid, syscall.SIGKILL)
			<-p.done
		}
		var exit *exec.ExitError
		if p.err != nil && !errors.As(p.err, &exit) {
			err = fmt.Errorf("stopping %s: %w", p.name, p.err)
		}
	})
	return err
}

// waitFor polls cond until it returns true, the process dies or ctx ends.
func (p *process) waitFor(ctx context.Context, what string, cond func(context.Context) bool) error {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if cond(ctx) {
			return nil
		}
		if done, err := p.exited(); done {
			return fmt.Errorf("%s exited before %s: %v", p.name, what, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

func openLog(dir, name string) (*os.File, error) {
	return os.OpenFile(dir+"/"+name+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
}

// StartProgram runs a program alongside the control plane (a webhook server, say), logging to
// <Dir>/<name>.log, and stops it with the environment. env is added to this process's
// environment.
func (e *Env) StartProgram(name, bin string, env []string, args ...string) error {
	log, err := openLog(e.Dir, name)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	p, err := startProcessEnv(name, log, bin, env, args...)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	e.track(p)
	return nil
}
