package webhook

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/go-logr/logr"

	"github.com/nerv-platform/nerv/pkg/policy"
)

// LoadEngine reads, validates and compiles a config file; an empty path means the defaults.
func LoadEngine(path string) (*policy.Engine, []byte, error) {
	if path == "" {
		e, err := policy.NewEngine(policy.DefaultConfig())
		return e, nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("reading policy config: %w", err)
	}
	cfg, err := policy.LoadConfig(data, path)
	if err != nil {
		return nil, data, err
	}
	e, err := policy.NewEngine(cfg)
	return e, data, err
}

// Reloader watches the config file and swaps in each new valid config. A ConfigMap volume
// updates by swapping a symlink in the file's directory, so the directory is watched, and a
// periodic re-read covers filesystems where events are lost.
type Reloader struct {
	Path     string
	Interval time.Duration
	Apply    func(*policy.Engine)
	Metrics  *Metrics
	Log      logr.Logger

	last []byte
}

// NewReloader starts from the config already loaded (its bytes in loaded).
func NewReloader(path string, loaded []byte, interval time.Duration, apply func(*policy.Engine), m *Metrics, log logr.Logger) *Reloader {
	return &Reloader{Path: path, Interval: interval, Apply: apply, Metrics: m, Log: log, last: loaded}
}

// Start runs until ctx ends (a manager.Runnable).
func (r *Reloader) Start(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watching policy config: %w", err)
	}
	defer w.Close()
	if err := w.Add(filepath.Dir(r.Path)); err != nil {
		return fmt.Errorf("watching policy config directory: %w", err)
	}
	interval := r.Interval
	if interval <= 0 {
		interval = 30 * time.Second
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	// Editors and kubelet write in several steps; settle before reading.
	var settle <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.Events:
			settle = time.After(100 * time.Millisecond)
		case err := <-w.Errors:
			r.Log.Error(err, "watching policy config; periodic re-read continues", "path", r.Path)
		case <-settle:
			r.reload()
		case <-tick.C:
			r.reload()
		}
	}
}

// reload applies the file if it changed and is valid; otherwise the last good config stays.
func (r *Reloader) reload() {
	data, err := os.ReadFile(r.Path)
	if err != nil {
		r.reject(err)
		return
	}
	if bytes.Equal(data, r.last) {
		return
	}
	cfg, err := policy.LoadConfig(data, r.Path)
	if err != nil {
		r.reject(err)
		r.last = data // log a bad file once, not on every tick
		return
	}
	e, err := policy.NewEngine(cfg)
	if err != nil {
		r.reject(err)
		r.last = data
		return
	}
	r.last = data
	r.Apply(e)
	r.Metrics.ConfigReloads.WithLabelValues("success").Inc()
	r.Log.Info("policy config reloaded", "path", r.Path,
		"resourcesMode", cfg.Policies.Resources.Mode, "networkMode", cfg.Policies.Network.Mode)
}

func (r *Reloader) reject(err error) {
	r.Metrics.ConfigReloads.WithLabelValues("rejected").Inc()
	r.Log.Error(err, "policy config rejected; the last good config stays active", "path", r.Path)
}
