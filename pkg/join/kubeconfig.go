package join

import (
	"context"
	"errors"
	"fmt"
	"github.com/nerv-platform/nerv/pkg/atomicfile"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/nerv-platform/nerv/pkg/sshclient"
)

// kubeconfigRetry is how often the kubeconfig step retries while the node boots and k3s
// writes its kubeconfig.
var kubeconfigRetry = 5 * time.Second

// serverURL is the API address the merged context points at.
func (j *joiner) serverURL() string { return "https://" + net.JoinHostPort(j.node.IP, "6443") }

// contextPresent reports whether the local kubeconfig has the cluster's context pointing at
// this node.
func (j *joiner) contextPresent() bool {
	if j.o.Kubeconfig == "" {
		return false
	}
	cfg, err := clientcmd.LoadFromFile(j.o.Kubeconfig)
	if err != nil {
		return false
	}
	name := j.cluster.Metadata.Name
	ctx, ok := cfg.Contexts[name]
	if !ok {
		return false
	}
	cl, ok := cfg.Clusters[ctx.Cluster]
	return ok && cl.Server == j.serverURL()
}

func (j *joiner) kubeconfigDone(context.Context) (bool, string, error) {
	if !j.first || !j.contextPresent() {
		return false, "", nil
	}
	j.kubeContext = j.cluster.Metadata.Name
	j.kube = nil
	return true, fmt.Sprintf("context %q already in %s", j.kubeContext, j.o.Kubeconfig), nil
}

// kubeconfig fetches k3s' admin kubeconfig from the first server (logging in as the admin
// user: the installed system refuses root), points it at the node's address and merges it
// into the local kubeconfig as a context named after the cluster.
func (j *joiner) kubeconfig(ctx context.Context) (string, error) {
	o := j.o
	if !j.first {
		return "", skip("not the first server: the cluster's context is already in use")
	}
	if o.Kubeconfig == "" {
		return "", usagef("no kubeconfig file to merge the new cluster into (set --kubeconfig or KUBECONFIG)")
	}
	data, err := j.fetchKubeconfig(ctx)
	if err != nil {
		return "", err
	}
	name := j.cluster.Metadata.Name
	if err := MergeKubeconfig(o.Kubeconfig, data, name, j.serverURL()); err != nil {
		return "", err
	}
	j.kubeContext = name
	j.kube = nil
	return fmt.Sprintf("context %q (server %s) merged into %s", name, j.serverURL(), o.Kubeconfig), nil
}

// fetchKubeconfig reads the remote kubeconfig, retrying while the machine reboots into
// NixOS and k3s starts. Host key and credential problems end it at once.
func (j *joiner) fetchKubeconfig(ctx context.Context) ([]byte, error) {
	o := j.o
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	read := "cat -- " + shellQuote(o.RemoteKubeconfig)
	if o.AdminUser != "root" {
		// k3s writes it 0600 root; the admin is in wheel with password-less sudo.
		read = "sudo -n " + read
	}
	start := time.Now()
	var last error
	for {
		c, err := sshclient.Dial(ctx, sshclient.Config{
			Addr:           o.SSHAddress,
			User:           o.AdminUser,
			IdentityFile:   o.IdentityFile,
			KnownHostsFile: j.knownHosts(),
			ConnectTimeout: o.ConnectTimeout,
		})
		var connErr *sshclient.ConnectError
		switch {
		case err == nil:
			out, rerr := c.Output(ctx, read)
			c.Close()
			if rerr == nil && len(out) > 0 {
				return out, nil
			}
			last = rerr
		case errors.As(err, &connErr):
			last = err
		default:
			return nil, err
		}
		fmt.Fprintf(o.Out, "  waiting for %s on %s: %s elapsed (%v)\n", o.RemoteKubeconfig, o.Node, time.Since(start).Round(time.Second), last)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no kubeconfig from %s after %s: %v", o.Node, o.Timeout, last)
		case <-time.After(kubeconfigRetry):
		}
	}
}

// MergeKubeconfig merges a k3s kubeconfig (one cluster, user and context, all "default",
// server https://127.0.0.1:6443) into the file at path as cluster, user and context called
// name, with the server set to server. Entries of that name are replaced, others kept; the
// current context is set only if there was none. The file is written atomically with mode
// 0600 (it holds the cluster admin's credentials).
func MergeKubeconfig(path string, k3s []byte, name, server string) error {
	in, err := clientcmd.Load(k3s)
	if err != nil {
		return fmt.Errorf("parsing the node's kubeconfig: %w", err)
	}
	if len(in.Contexts) != 1 {
		return fmt.Errorf("the node's kubeconfig has %d contexts, want 1", len(in.Contexts))
	}
	var src *clientcmdapi.Context
	for _, c := range in.Contexts {
		src = c
	}
	cluster, ok := in.Clusters[src.Cluster]
	if !ok {
		return fmt.Errorf("the node's kubeconfig: context names cluster %q, which it lacks", src.Cluster)
	}
	user, ok := in.AuthInfos[src.AuthInfo]
	if !ok {
		return fmt.Errorf("the node's kubeconfig: context names user %q, which it lacks", src.AuthInfo)
	}

	out := clientcmdapi.NewConfig()
	mode := fs.FileMode(0o600)
	if existing, err := os.ReadFile(path); err == nil {
		if out, err = clientcmd.Load(existing); err != nil {
			return fmt.Errorf("reading %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	cluster = cluster.DeepCopy()
	cluster.Server = server
	cluster.LocationOfOrigin = ""
	user = user.DeepCopy()
	user.LocationOfOrigin = ""
	out.Clusters[name] = cluster
	out.AuthInfos[name] = user
	out.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: src.Namespace}
	if out.CurrentContext == "" {
		out.CurrentContext = name
	}
	data, err := clientcmd.Write(*out)
	if err != nil {
		return fmt.Errorf("encoding %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := writeAtomic(path, data, mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

func writeAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	return atomicfile.WriteFile(path, data, mode)
}
