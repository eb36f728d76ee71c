package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"
)

// Path is where the validating webhook is served; manifests/webhook points the
// ValidatingWebhookConfiguration at it.
const Path = "/validate"

// Options configure a Server; cmd/nerv-webhook fills them from flags.
type Options struct {
	RestConfig *rest.Config
	// ConfigPath is the policy config file; empty means the built-in defaults.
	ConfigPath string
	// CertDir holds tls.crt and tls.key; they are re-read when they change.
	CertDir string
	Host    string
	Port    int
	// MetricsBindAddress serves /metrics ("0" disables).
	MetricsBindAddress string
	// HealthProbeBindAddress serves /healthz and /readyz ("0" disables).
	HealthProbeBindAddress string
	// ShutdownDelay keeps serving, with /readyz failing, this long after the stop signal,
	// so that the Service stops routing here before the listener closes.
	ShutdownDelay time.Duration
	// ConfigPollInterval is the periodic re-read of the config file (default 30s).
	ConfigPollInterval time.Duration
	Log                logr.Logger
}

// Server is nerv-webhook: a controller-runtime manager running the webhook server, the
// informer caches, probes, metrics and the config reloader.
type Server struct {
	Handler  *Handler
	Manager  manager.Manager
	views    *CacheViews
	draining atomic.Bool
	o        Options
}

// New builds the server; it loads the config and fails if it is invalid.
func New(o Options) (*Server, error) {
	engine, loaded, err := LoadEngine(o.ConfigPath)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	unsafe := cache.ByObject{UnsafeDisableDeepCopy: ptr.To(true)}
	podOpts := unsafe
	podOpts.Transform = stripPod
	mgr, err := manager.New(o.RestConfig, manager.Options{
		Scheme:                 scheme,
		Logger:                 o.Log,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress: o.HealthProbeBindAddress,
		WebhookServer:          crwebhook.NewServer(crwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir}),
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Pod{}:                 podOpts,
				&corev1.Namespace{}:           unsafe,
				&networkingv1.NetworkPolicy{}: unsafe,
			},
		},
		GracefulShutdownTimeout: ptr.To(30 * time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	metrics, err := NewMetrics(ctrlmetrics.Registry)
	if err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	s := &Server{Manager: mgr, views: &CacheViews{Reader: mgr.GetCache(), APIReader: mgr.GetAPIReader()}, o: o}
	s.Handler = NewHandler(engine, s.views, metrics, mgr.GetEventRecorder("nerv-webhook"), o.Log.WithName("decisions"))
	mgr.GetWebhookServer().Register(Path, &admission.Webhook{Handler: s.Handler, RecoverPanic: ptr.To(true)})

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	for name, check := range map[string]healthz.Checker{
		"caches":   func(*http.Request) error { return boolCheck(s.views.Synced(), "informer caches not synced") },
		"webhook":  mgr.GetWebhookServer().StartedChecker(),
		"draining": func(*http.Request) error { return boolCheck(!s.draining.Load(), "shutting down") },
	} {
		if err := mgr.AddReadyzCheck(name, check); err != nil {
			return nil, err
		}
	}
	if err := mgr.Add(manager.RunnableFunc(s.syncCaches)); err != nil {
		return nil, err
	}
	if o.ConfigPath != "" {
		r := NewReloader(o.ConfigPath, loaded, o.ConfigPollInterval, s.Handler.SetEngine, metrics, o.Log.WithName("config"))
		if err := mgr.Add(r); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func boolCheck(ok bool, msg string) error {
	if ok {
		return nil
	}
	return errors.New(msg)
}

// syncCaches starts the three informers the policies read and marks the views synced once
// they have listed everything.
func (s *Server) syncCaches(ctx context.Context) error {
	c := s.Manager.GetCache()
	for _, obj := range []client.Object{&networkingv1.NetworkPolicy{}, &corev1.Namespace{}, &corev1.Pod{}} {
		if _, err := c.GetInformer(ctx, obj, cache.BlockUntilSynced(false)); err != nil {
			return fmt.Errorf("starting informer for %T: %w", obj, err)
		}
	}
	if !c.WaitForCacheSync(ctx) {
		return ctx.Err()
	}
	s.views.MarkSynced()
	s.o.Log.Info("informer caches synced; ready")
	<-ctx.Done()
	return nil
}

// Ready reports whether the informer caches have synced (what /readyz checks besides the
// webhook server itself).
func (s *Server) Ready() bool { return s.views.Synced() && !s.draining.Load() }

// Start serves until ctx ends, then fails readiness, waits ShutdownDelay and stops,
// letting reviews in flight finish.
func (s *Server) Start(ctx context.Context) error {
	mgrCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	go func() {
		select {
		case <-ctx.Done():
		case <-mgrCtx.Done():
			return
		}
		s.draining.Store(true)
		s.o.Log.Info("stop requested: failing readiness, then draining", "delay", s.o.ShutdownDelay)
		time.Sleep(s.o.ShutdownDelay)
		cancel()
	}()
	return s.Manager.Start(mgrCtx)
}
