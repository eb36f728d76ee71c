// Command nerv-demo runs the local demo cluster: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok, supervised by this one process so that stopping it (SIGTERM from
// `make demo-down`, or Ctrl-C) stops everything. It is the same control plane the tests use
// (internal/testenv), kept running, with its logs and kubeconfig in --dir.
//
//	nerv-demo up --dir .nerv/demo --node misato=192.168.1.100:server --node kaji=192.168.1.102
//	nerv-demo down --dir .nerv/demo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/spec"
)

type nodeFlags []testenv.Node

func (n *nodeFlags) String() string { return fmt.Sprint(*n) }

// Set parses NAME=IP[:ROLE].
func (n *nodeFlags) Set(v string) error {
	name, rest, ok := strings.Cut(v, "=")
	if !ok || name == "" || rest == "" {
		return fmt.Errorf("want NAME=IP[:ROLE], got %q", v)
	}
	ip, role, _ := strings.Cut(rest, ":")
	if role == "" {
		role = "agent"
	}
	*n = append(*n, testenv.Node{Name: name, IP: ip, Role: role})
	return nil
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: nerv-demo up|down [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	dir := fs.String("dir", ".nerv/demo", "directory for logs, the kubeconfig and the pid file")
	var nodes nodeFlags
	fs.Var(&nodes, "node", "a kwok node NAME=IP[:ROLE] (repeatable)")
	specPath := fs.String("spec", "", "create one kwok node per spec.nodes entry of this nerv.yaml")
	var w webhookOptions
	fs.StringVar(&w.bin, "webhook-bin", "", "run this nerv-webhook binary and register it (TLS) with the shipped rules")
	fs.StringVar(&w.manifests, "webhook-manifests", "manifests/webhook", "the webhook's kustomize base (rules and policy ConfigMap)")
	_ = fs.Parse(os.Args[2:])
	if *specPath != "" {
		c, _, err := spec.LoadValid(*specPath)
		if err != nil {
			fmt.Fprintf(os.Stderr, "nerv-demo: %v\n", err)
			os.Exit(1)
		}
		for _, n := range c.Spec.Nodes {
			nodes = append(nodes, testenv.Node{Name: n.Name, IP: n.IP, Role: n.Role, Labels: n.Labels})
		}
	}

	var err error
	switch os.Args[1] {
	case "up":
		err = up(*dir, nodes, w)
	case "down":
		err = down(*dir)
	default:
		err = fmt.Errorf("unknown command %q: want up or down", os.Args[1])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "nerv-demo: %v\n", err)
		os.Exit(1)
	}
}

// up starts the cluster, writes <dir>/ready once every node is Ready, then supervises until
// signalled.
func up(dir string, nodes []testenv.Node, w webhookOptions) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pidFile := filepath.Join(dir, "nerv-demo.pid")
	if pid, err := readPid(pidFile); err == nil && syscall.Kill(pid, 0) == nil {
		return fmt.Errorf("a demo cluster is already running (pid %d); stop it with `make demo-down`", pid)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, "ready"))
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pidFile)

	opts := []testenv.Option{testenv.WithDir(dir)}
	if w.bin != "" {
		vwc, err := w.configuration()
		if err != nil {
			return err
		}
		opts = append(opts, testenv.WithWebhook(envtest.WebhookInstallOptions{
			ValidatingWebhooks: []*admissionregistrationv1.ValidatingWebhookConfiguration{vwc},
		}))
	}
	env, err := testenv.Start(ctx, opts...)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(os.Stderr, "nerv-demo: stopping the control plane")
		if err := env.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "nerv-demo: %v\n", err)
		}
		_ = os.Remove(filepath.Join(dir, "ready"))
	}()
	startCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, step := range []struct {
		name string
		run  func(context.Context) error
	}{
		{"kube-controller-manager", env.StartControllerManager},
		{"kube-scheduler", env.StartScheduler},
		{"kwok", env.StartKwok},
	} {
		t := time.Now()
		if err := step.run(startCtx); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "nerv-demo: %s up in %s\n", step.name, time.Since(t).Round(time.Millisecond))
	}
	if w.bin != "" {
		t := time.Now()
		if err := w.start(startCtx, env, dir); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "nerv-webhook: up in %s, registered at %s:%d with TLS\n", time.Since(t).Round(time.Millisecond), env.Webhook.LocalServingHost, env.Webhook.LocalServingPort)
	}
	for _, n := range nodes {
		if _, err := env.CreateNode(startCtx, n); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		if _, err := env.WaitNodeReady(startCtx, n.Name); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "ready"), []byte(env.Kubeconfig+"\n"), 0o600); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "nerv-demo: ready; kubeconfig %s\n", env.Kubeconfig)
	<-ctx.Done()
	return nil
}

// down signals the supervisor and waits until it (and with it every component) has exited.
func down(dir string) error {
	pidFile := filepath.Join(dir, "nerv-demo.pid")
	pid, err := readPid(pidFile)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintln(os.Stderr, "nerv-demo: no demo cluster running")
		return nil
	}
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		_ = os.Remove(pidFile)
		fmt.Fprintln(os.Stderr, "nerv-demo: no demo cluster running (stale pid file removed)")
		return nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			return fmt.Errorf("supervisor %d did not stop within 60s; killed", pid)
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Fprintln(os.Stderr, "nerv-demo: stopped")
	return nil
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}
