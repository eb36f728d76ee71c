package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"
)

// SkipEnv is the variable that lets a developer without the assets skip envtest-backed
// packages. CI never sets it.
const SkipEnv = "NERV_SKIP_ENVTEST"

// Main is a TestMain body: it starts one control plane for the package, stores it in *env,
// runs the tests, stops it and exits. Missing assets fail the package with the command that
// builds them, unless NERV_SKIP_ENVTEST=1, which skips the package loudly.
func Main(m *testing.M, env **Env, opts ...Option) {
	os.Exit(run(m, env, opts...))
}

func run(m *testing.M, env **Env, opts ...Option) int {
	if v := os.Getenv(SkipEnv); v == "1" || strings.EqualFold(v, "true") {
		fmt.Fprintf(os.Stderr, "\n*** %s=1: SKIPPING every test of this package: it needs a real kube-apiserver (hack/test-assets.sh builds it) ***\n\n", SkipEnv)
		return 0
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := Start(ctx, opts...)
	if err != nil {
		var missing *MissingAssetError
		if errors.As(err, &missing) {
			fmt.Fprintf(os.Stderr, "FAIL: %v\n(set %s=1 to skip envtest-backed packages locally; CI never does)\n", err, SkipEnv)
		} else {
			fmt.Fprintf(os.Stderr, "FAIL: %v\n", err)
		}
		return 1
	}
	// An interrupted `go test` must not leave etcd and the apiserver running.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		if _, ok := <-sigs; ok {
			_ = e.Stop()
			os.Exit(130)
		}
	}()
	*env = e
	code := m.Run()
	signal.Stop(sigs)
	close(sigs)
	if err := e.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "testenv: stopping: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
