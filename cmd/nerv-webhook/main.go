// Command nerv-webhook is NERV's validating admission webhook. All logic lives in pkg/webhook.
package main

import (
	"flag"
	"fmt"
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

func main() {
	var o webhook.Options
	var showVersion bool
	fs := flag.CommandLine
	fs.StringVar(&o.CertDir, "cert-dir", "/tls", "directory holding tls.crt and tls.key (re-read when they change)")
	fs.StringVar(&o.ConfigPath, "config", "", "policy config file (default: built-in defaults); reloaded when it changes")
	fs.IntVar(&o.Port, "port", 9443, "webhook HTTPS port")
	fs.StringVar(&o.MetricsBindAddress, "metrics-bind-address", ":8080", `address of the Prometheus /metrics endpoint ("0" disables)`)
	fs.StringVar(&o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", `address of /healthz and /readyz ("0" disables)`)
	fs.DurationVar(&o.ShutdownDelay, "shutdown-delay", 5*time.Second, "keep serving with readiness failing this long after SIGTERM, so endpoints drain first")
	fs.BoolVar(&showVersion, "version", false, "print the version and exit")
	verbose := fs.Bool("v", false, "debug logging")
	flag.Parse()

	if showVersion {
		fmt.Println("nerv-webhook " + version.Get().String())
		return
	}
	// JSON logs, one decision per line, for log pipelines.
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := logr.FromSlogHandler(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctrllog.SetLogger(log)
	log.Info("starting nerv-webhook", "version", version.Get().String())

	cfg, err := config.GetConfig()
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: no cluster config: %v\n", err)
		os.Exit(2)
	}
	o.RestConfig = cfg
	o.Log = log
	s, err := webhook.New(o)
	if err != nil {
		fmt.Fprintf(os.Stderr, "error: %v\n", err)
		os.Exit(2)
	}
	if err := s.Start(signals.SetupSignalHandler()); err != nil {
		log.Error(err, "nerv-webhook stopped")
		os.Exit(1)
	}
}
