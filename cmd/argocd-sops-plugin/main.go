// Command argocd-sops-plugin is the ArgoCD config management plugin (sidecar, CMP v2) that
// decrypts SOPS age-encrypted manifests in memory. The work lives in pkg/cmp and pkg/sopsdoc.
package main

import (
	"os"
	"runtime/debug"

	"github.com/nerv-platform/nerv/pkg/cmp"
)

// The plugin is a short batch process (one per manifest generation) with a live heap of about
// 5 MiB that allocates some 500 MiB per 1,000 encrypted files inside sops, age and the YAML
// coders. With Go's default GOGC of 100 that is about 100 collections per run, serial work
// that kept a second core from helping (docs/PERFORMANCE.md). A higher GOGC trades memory for
// fewer collections; the soft memory limit keeps the heap well inside the sidecar's 256Mi.
// GOGC and GOMEMLIMIT in the environment still override both.
const (
	gcPercent   = 800
	memoryLimit = 100 << 20
)

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	streams := cmp.Streams{Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(cmp.Execute(cmp.NewCommand(streams, os.Getenv), streams))
}
