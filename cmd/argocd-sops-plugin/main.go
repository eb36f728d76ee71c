// Command argocd-sops-plugin is the ArgoCD config management plugin (sidecar, CMP v2) that
// decrypts SOPS age-encrypted manifests in memory. The work lives in pkg/cmp and pkg/sopsdoc.
package main

import (
	"os"
	"runtime/debug"
	"runtime/metrics"

	"github.com/nerv-platform/nerv/internal/hugeheap/atinit"
	"github.com/nerv-platform/nerv/pkg/cmp"
)

// The plugin is a short batch process (one per manifest generation) with a live heap of about
// 5 MiB that allocates about 300 MiB per 1,000 encrypted files inside sops, age and the YAML
// coders. With Go's default GOGC of 100 that is about 60 collections per run, which the second
// core mostly spends on (docs/PERFORMANCE.md). A higher GOGC trades memory for fewer
// collections. With 4 KiB pages each step up also touched more fresh memory, and 300 to 400
// were fastest; with the heap on huge pages (atinit) fresh memory is cheap, and what is left
// is the collections' cost on two cores (stopping both Ps, two allocators sharing spans):
// 800 is about 7 % faster than 400 with two cores and the same with one (21 alternating
// runs), for 25-40 MiB more peak RSS (100-120 MiB on the 2,000-file benchmark app).
// 1200 was no faster. The soft memory limit keeps the heap well inside the sidecar's 256Mi
// whatever the app. GOGC and GOMEMLIMIT in the environment still override both.
const (
	gcPercent   = 800
	memoryLimit = 100 << 20
)

func main() {
	settleHeap()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	streams := cmp.Streams{Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(cmp.Execute(cmp.NewCommand(streams, os.Getenv), streams))
}

// settleHeap gives atinit's stretch back if the first collection missed it, before the heap
// grows; reading the metric takes about 50 µs.
func settleHeap() {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	atinit.Settle(s[0].Value.Uint64())
}
