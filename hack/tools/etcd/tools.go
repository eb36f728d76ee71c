//go:build tools

// Package etcd pins the etcd server that hack/test-assets.sh builds for tests and the demo.
package etcd

import _ "go.etcd.io/etcd/server/v3"
