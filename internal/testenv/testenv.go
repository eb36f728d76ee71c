// Package testenv runs a real Kubernetes control plane for NERV's tests and demo: etcd and
// kube-apiserver through controller-runtime's envtest, plus, on request, kube-controller-manager,
// kube-scheduler and kwok (simulated nodes that turn Ready). The binaries are the ones
// hack/test-assets.sh builds; nothing is downloaded at test time.
//
// One control plane serves a whole test package:
//
//	var env *testenv.Env
//	func TestMain(m *testing.M) { testenv.Main(m, &env) }
package testenv

import (
	"context"
	"errors"
	"fmt"
	"github.com/nerv-platform/nerv/pkg/atomicfile"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr/funcr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

var setLoggerOnce sync.Once

// Env is a running control plane and the clients to reach it.
type Env struct {
	// Config reaches the apiserver as a cluster admin (system:masters).
	Config *rest.Config
	// Client is a controller-runtime client over Scheme.
	Client client.Client
	// Clientset is a client-go clientset.
	Clientset kubernetes.Interface
	// Scheme holds client-go's types and apiextensions/v1.
	Scheme *runtime.Scheme
	// Kubeconfig is the path of an admin kubeconfig file for the apiserver.
	Kubeconfig string
	// Dir holds the kubeconfig and the logs of every component (<component>.log).
	Dir string
	// Webhook is envtest's webhook install options after start: the local serving host, port
	// and cert dir a webhook server under test must use.
	Webhook *envtest.WebhookInstallOptions

	env     *envtest.Environment
	keepDir bool
	mu      sync.Mutex
	procs   []*process
	kwok    *process
}

type options struct {
	crdPaths      []string
	crds          []*apiextensionsv1.CustomResourceDefinition
	webhook       *envtest.WebhookInstallOptions
	dir           string
	apiserverArgs map[string][]string
}

// Option configures Start.
type Option func(*options)

// WithCRDPaths installs the CRDs in these files or directories before Start returns.
func WithCRDPaths(paths ...string) Option {
	return func(o *options) { o.crdPaths = append(o.crdPaths, paths...) }
}

// WithCRDs installs these CRDs before Start returns.
func WithCRDs(crds ...*apiextensionsv1.CustomResourceDefinition) Option {
	return func(o *options) { o.crds = append(o.crds, crds...) }
}

// WithWebhook registers admission webhooks that envtest points at a local serving port
// (Env.Webhook tells the test where to serve).
func WithWebhook(w envtest.WebhookInstallOptions) Option {
	return func(o *options) { o.webhook = &w }
}

// WithDir keeps logs and the kubeconfig in dir (created if missing) and leaves them there on
// Stop, as the demo does; by default a temp dir is used and removed.
func WithDir(dir string) Option {
	return func(o *options) { o.dir = dir }
}

// WithAPIServerArg sets a kube-apiserver flag (name without dashes).
func WithAPIServerArg(name string, values ...string) Option {
	return func(o *options) {
		if o.apiserverArgs == nil {
			o.apiserverArgs = map[string][]string{}
		}
		o.apiserverArgs[name] = values
	}
}

// Start brings up etcd and kube-apiserver and waits until the API answers.
func Start(ctx context.Context, opts ...Option) (*Env, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	apiserverPath, err := Asset("kube-apiserver")
	if err != nil {
		return nil, err
	}
	etcdPath, err := Asset("etcd")
	if err != nil {
		return nil, err
	}

	e := &Env{keepDir: o.dir != ""}
	if o.dir != "" {
		if err := os.MkdirAll(o.dir, 0o700); err != nil {
			return nil, fmt.Errorf("testenv: %w", err)
		}
		e.Dir, _ = filepath.Abs(o.dir)
	} else if e.Dir, err = os.MkdirTemp("", "nerv-testenv-"); err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	apiLog, err := openLog(e.Dir, "kube-apiserver")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}
	etcdLog, err := openLog(e.Dir, "etcd")
	if err != nil {
		return nil, fmt.Errorf("testenv: %w", err)
	}

	e.Scheme = runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(e.Scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(e.Scheme))

	// envtest logs through controller-runtime's logger, which must be set once per process
	// or it complains loudly; errors go to stderr, chatter is dropped.
	setLoggerOnce.Do(func() {
		logf.SetLogger(funcr.New(func(prefix, args string) {
			fmt.Fprintln(os.Stderr, prefix, args)
		}, funcr.Options{Verbosity: 0}))
	})

	api := &envtest.APIServer{Path: apiserverPath, Out: apiLog, Err: apiLog}
	args := api.Configure()
	for k, v := range o.apiserverArgs {
		args.Set(k, v...)
	}
	e.env = &envtest.Environment{
		ControlPlane: envtest.ControlPlane{
			APIServer: api,
			Etcd:      &envtest.Etcd{Path: etcdPath, Out: etcdLog, Err: etcdLog},
		},
		Scheme:                   e.Scheme,
		CRDDirectoryPaths:        o.crdPaths,
		CRDs:                     o.crds,
		ErrorIfCRDPathMissing:    true,
		ControlPlaneStartTimeout: 60 * time.Second,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	if kubectl, err := Asset("kubectl"); err == nil {
		e.env.ControlPlane.KubectlPath = kubectl
	}
	if o.webhook != nil {
		e.env.WebhookInstallOptions = *o.webhook
	}

	start := time.Now()
	cfg, err := e.env.Start()
	if err != nil {
		_ = e.env.Stop()
		return nil, fmt.Errorf("testenv: starting kube-apiserver and etcd (logs in %s): %w", e.Dir, err)
	}
	e.Config = cfg
	e.Webhook = &e.env.WebhookInstallOptions
	if e.Client, err = client.New(cfg, client.Options{Scheme: e.Scheme}); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("testenv: %w", err)
	}
	if e.Clientset, err = kubernetes.NewForConfig(cfg); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("testenv: %w", err)
	}
	e.Kubeconfig = filepath.Join(e.Dir, "kubeconfig")
	if err := writeFileAtomic(e.Kubeconfig, e.env.KubeConfig, 0o600); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("testenv: %w", err)
	}
	fmt.Fprintf(os.Stderr, "testenv: control plane up in %s (logs in %s)\n", time.Since(start).Round(time.Millisecond), e.Dir)
	return e, nil
}

// Stop stops every component this Env started, newest first, and removes its temp dir.
func (e *Env) Stop() error {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	e.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		errs = append(errs, procs[i].stop(10*time.Second))
	}
	if e.env != nil {
		errs = append(errs, e.env.Stop())
	}
	if !e.keepDir && e.Dir != "" {
		errs = append(errs, os.RemoveAll(e.Dir))
	}
	return errors.Join(errs...)
}

// CertDir is the apiserver's certificate directory (CA, serving and service-account keys).
func (e *Env) CertDir() string {
	return e.env.ControlPlane.APIServer.CertDir
}

// AddUser provisions a client certificate user with the given groups and returns a config
// for it; without RBAC bindings such a user can do nothing, which is what RBAC tests want.
func (e *Env) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := e.env.ControlPlane.AddUser(envtest.User{Name: name, Groups: groups}, &rest.Config{QPS: 1000, Burst: 2000})
	if err != nil {
		return nil, fmt.Errorf("testenv: adding user %s: %w", name, err)
	}
	return u.Config(), nil
}

// InstallCRDs installs the CRDs found in files or directories and waits until they serve.
func (e *Env) InstallCRDs(ctx context.Context, paths ...string) error {
	_, err := envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{Paths: paths, ErrorIfPathMissing: true, Scheme: e.Scheme})
	if err != nil {
		return fmt.Errorf("testenv: installing CRDs from %v: %w", paths, err)
	}
	return nil
}

// InstallCRDObjects installs the given CRDs and waits until they serve.
func (e *Env) InstallCRDObjects(ctx context.Context, crds ...*apiextensionsv1.CustomResourceDefinition) error {
	_, err := envtest.InstallCRDs(e.Config, envtest.CRDInstallOptions{CRDs: crds, Scheme: e.Scheme})
	if err != nil {
		return fmt.Errorf("testenv: installing CRDs: %w", err)
	}
	return nil
}

func (e *Env) track(p *process) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.procs = append(e.procs, p)
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	return atomicfile.WriteFile(path, data, mode)
}
