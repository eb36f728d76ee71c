package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"
)

// StartControllerManager runs kube-controller-manager against the apiserver, so that
// Deployments create ReplicaSets and Pods, PodDisruptionBudgets get a status, garbage
// collection works and namespaces get their default ServiceAccount. It returns once the
// controller manager reports healthy.
func (e *Env) StartControllerManager(ctx context.Context) error {
	bin, err := Asset("kube-controller-manager")
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	certDir := e.CertDir()
	return e.startComponent(ctx, "kube-controller-manager", bin, port,
		"--kubeconfig="+e.Kubeconfig,
		"--authentication-kubeconfig="+e.Kubeconfig,
		"--authorization-kubeconfig="+e.Kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(e.Dir, "kube-controller-manager-certs"),
		"--service-account-private-key-file="+filepath.Join(certDir, "sa-signer.key"),
		"--root-ca-file="+filepath.Join(certDir, "apiserver.crt"),
		"--use-service-account-credentials=false",
		// No real kubelets: node IPAM has nothing to do. (This build has no cloud controllers, and
		// naming an unknown controller makes kube-controller-manager exit.)
		"--controllers=*,-node-ipam-controller",
		"--concurrent-deployment-syncs=10",
	)
}

// StartScheduler runs kube-scheduler so that Pods are bound to (kwok) nodes.
func (e *Env) StartScheduler(ctx context.Context) error {
	bin, err := Asset("kube-scheduler")
	if err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	return e.startComponent(ctx, "kube-scheduler", bin, port,
		"--kubeconfig="+e.Kubeconfig,
		"--authentication-kubeconfig="+e.Kubeconfig,
		"--authorization-kubeconfig="+e.Kubeconfig,
		"--leader-elect=false",
		"--bind-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(e.Dir, "kube-scheduler-certs"),
	)
}

// startComponent starts a control-plane component and waits for its /healthz.
func (e *Env) startComponent(ctx context.Context, name, bin string, port int, args ...string) error {
	log, err := openLog(e.Dir, name)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	p, err := startProcess(name, log, bin, args...)
	if err != nil {
		return fmt.Errorf("testenv: %w", err)
	}
	e.track(p)
	// The component serves its own self-signed certificate; this is a liveness probe on
	// loopback, not a trust decision.
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec
	url := fmt.Sprintf("https://127.0.0.1:%d/healthz", port)
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	err = p.waitFor(ctx, name+" healthy", func(ctx context.Context) bool {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if err != nil {
		return fmt.Errorf("testenv: %w (log: %s)", err, filepath.Join(e.Dir, name+".log"))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
