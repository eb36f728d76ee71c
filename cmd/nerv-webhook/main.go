// Command nerv-webhook is NERV's validating admission webhook. All logic lives in pkg/webhook.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/client/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager/signals"

	"github.com/nerv-platform/nerv/internal/version"
	"github.com/nerv-platform/nerv/pkg/webhook"
)

// Exit codes: 0 clean shutdown, 1 failed while serving, 2 could not start (flags, config).
func main() {
	os.Exit(run(signals.SetupSignalHandler(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var o webhook.Options
	fs := flag.NewFlagSet("nerv-webhook", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.CertDir, "cert-dir", "/tls", "directory holding tls.crt and tls.key (re-read when they change)")
	fs.StringVar(&o.ConfigPath, "config", "", "policy config file (default: built-in defaults); reloaded when it changes")
	fs.IntVar(&o.Port, "port", 9443, "webhook HTTPS port")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", `address of the Prometheus /metrics endpoint ("0" disables)`)
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", `address of /healthz and /readyz ("0" disables)`)
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 5*time.Second, "keep serving with readiness failing this long after SIGTERM, so endpoints drain first")
	showVersion := fs.Bool("version", false, "print the version and exit")
	verbose := fs.Bool("v", false, "debug logging")
	config.RegisterFlags(fs) // --kubeconfig
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "nerv-webhook "+version.Get().String())
		return 0
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	// JSON logs, one decision per line, for log pipelines.
	log := logr.FromSlogHandler(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctrllog.SetLogger(log)
	log.Info("starting nerv-webhook", "version", version.Get().String())

	cfg, err := config.GetConfig()
	if err != nil {
		fmt.Fprintf(stderr, "error: no cluster config: %v\n", err)
		return 2
	}
	o.RestConfig = cfg
	o.Log = log
	s, err := webhook.New(o)
	if err != nil {
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	if err := s.Start(ctx); err != nil {
		log.Error(err, "nerv-webhook stopped")
		return 1
	}
	return 0
}
