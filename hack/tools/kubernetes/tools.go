//go:build tools

// Package kubernetes pins the Kubernetes commands that hack/test-assets.sh builds for tests
// and the demo. It is a separate module so that k8s.io/kubernetes never enters the main
// module's dependency graph.
package kubernetes

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
