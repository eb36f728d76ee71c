// Command argocd-sops-plugin is the ArgoCD config management plugin (sidecar, CMP v2) that
// decrypts SOPS age-encrypted manifests in memory. The work lives in pkg/cmp and pkg/sopsdoc.
package main

import (
	"os"
	"runtime/debug"

	"github.com/nerv-platform/nerv/internal/hugeheap"
	"github.com/nerv-platform/nerv/pkg/cmp"
)

// The plugin is a short batch process (one per manifest generation) with a live heap of about
// 5 MiB that allocates about 240 MiB per 1,000 encrypted files inside sops, age and the YAML
// coders. With Go's default GOGC of 100 that is about 60 collections per run, which the second
// core mostly spends on (docs/PERFORMANCE.md). A higher GOGC trades memory for fewer
// collections, but each step up also touches more fresh memory, and the page faults cost the
// single-core run more than the collections it saves: 300 and 400 gave the lowest wall times
// with one core and with two (GOGC 200 to 1600 measured). Huge pages (below) made fresh heap
// cheaper, and 800 is now about 4 % faster; 400 stays for the smaller heap. The soft memory
// limit keeps the heap well inside the sidecar's 256Mi. GOGC and GOMEMLIMIT in the
// environment still override both.
const (
	gcPercent   = 400
	memoryLimit = 100 << 20
)

// Transparent huge pages for the heap (internal/hugeheap): the heap at GOGC 400 peaks near
// 35 MiB, and growing into it with 2 MiB pages instead of 4 KiB ones saves thousands of page
// faults. Marking the heap costs about 5 ms (mapping 64 MiB and one collection); measured, it
// breaks even at about 30 files (half of them encrypted) and smaller apps skip it.
const (
	hugeStretch  = 64 << 20
	hugeHeapFrom = 32 // files in the app dir
)

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	streams := cmp.Streams{Out: os.Stdout, ErrOut: os.Stderr}
	os.Exit(cmp.Execute(cmp.NewCommand(streams, os.Getenv, cmp.WithPrepare(adviseHeap)), streams))
}

// adviseHeap runs after the app dir's walk, before the first file is read: the heap then
// holds few freed pages, none in a run long enough for the stretch, which Advise needs. It is best effort; without it (not Linux, THP
// off or already "always") the plugin works the same, only slower.
func adviseHeap(files int) {
	if files >= hugeHeapFrom {
		_, _ = hugeheap.Advise(hugeStretch)
	}
}
