// Package atinit backs a short batch process' Go heap with transparent huge pages from
// package initialisation on. Import it from the main package only, and call Settle first
// thing in main:
//
//	import "github.com/nerv-platform/nerv/internal/hugeheap/atinit"
//
// A program that links a large library set (argocd-sops-plugin links about 1,100 packages)
// allocates a few MiB while initialising them, 4 KiB page by 4 KiB page: about 1,000 page
// faults, 14 µs each on a virtual machine, before main runs (docs/PERFORMANCE.md). Go
// initialises a package once its imports are done, the lexically first among those ready,
// so this package, which imports little, is about the 100th of the plugin's 496 to
// initialise, after 0.14 MB of their 3.8 MB of allocations; marking from main would come
// after all of them.
package atinit

import (
	"runtime"

	"github.com/nerv-platform/nerv/internal/hugeheap"
)

// Stretch is the heap mapped and marked at once: argocd-sops-plugin's heap peaks near 60 MiB
// at its GOGC of 800 on the largest benchmark app. A heap that grows past it still works,
// with 4 KiB pages for the rest.
const Stretch = 64 << 20

var (
	result    hugeheap.Result
	adviseErr error
)

func init() {
	result, adviseErr = hugeheap.Advise(Stretch)
}

// Result reports what the marking at initialisation did; for diagnostics and tests.
func Result() (hugeheap.Result, error) { return result, adviseErr }

// Settle gives the stretch back if it is still in the heap, and says whether it had to.
// heapObjects is runtime/metrics' /memory/classes/heap/objects:bytes, which this package
// cannot read itself: runtime/metrics initialises late. Call it from main, when
// initialisation has given the first collection time to finish.
//
// The stretch is garbage from its allocation on, and the collection that allocation starts
// frees it, unless another P scans the allocating stack at once (3 runs in 30 of
// argocd-sops-plugin with two Ps, none with one). The next collection would then come late,
// after the heap had grown past the marked range; this one costs milliseconds.
func Settle(heapObjects uint64) bool {
	if result.Bytes() == 0 || heapObjects < Stretch {
		return false
	}
	runtime.GC()
	return true
}
