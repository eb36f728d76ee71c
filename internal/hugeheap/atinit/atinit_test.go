package atinit

import (
	"errors"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"

	"github.com/nerv-platform/nerv/internal/hugeheap"
)

// TestInitMarkedTheHeap: this test binary imports the package, so its init has run and the
// heap mapping is marked. After Settle, called as the plugin's main calls it, the stretch is
// out of the heap: the first collection may or may not have freed it, Settle sees which.
func TestInitMarkedTheHeap(t *testing.T) {
	res, err := Result()
	if err != nil {
		t.Fatalf("marking at init: %v", err)
	}
	if res.Mode != hugeheap.ModeMadvise {
		t.Skipf("THP mode is %q; only madvise mode needs the mark", res.Mode)
	}
	if res.Bytes() < Stretch/2 {
		t.Fatalf("init marked %d bytes (%#x-%#x), want at least %d", res.Bytes(), res.Start, res.End, Stretch/2)
	}
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	collected := Settle(s[0].Value.Uint64())
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc >= Stretch/2 {
		t.Errorf("the heap holds %d MiB after init and Settle (which collected: %v): the %d MiB stretch was not given back",
			ms.HeapAlloc>>20, collected, Stretch>>20)
	}
}

// TestSettle collects only when the heap still holds a stretch's worth of objects.
func TestSettle(t *testing.T) {
	if res, err := Result(); err != nil || res.Bytes() == 0 {
		t.Skipf("nothing was marked at init (%+v, %v), so there is nothing to settle", res, err)
	}
	for _, tc := range []struct {
		heapObjects uint64
		want        bool
	}{
		{0, false},
		{Stretch - 1, false},
		{Stretch, true},
		{4 * Stretch, true},
	} {
		before := numGC()
		got := Settle(tc.heapObjects)
		collected := numGC() > before
		if got != tc.want || collected != tc.want {
			t.Errorf("Settle(%d) = %v and collected: %v; want %v for both", tc.heapObjects, got, collected, tc.want)
		}
	}
}

func numGC() uint32 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.NumGC
}

// TestInitialisesEarly: Go initialises a package once its imports are done, the lexically
// first among the ready ones, so one import that initialises late (runtime/debug sorts after
// most of a large program's module paths) moves this package's init behind many of theirs.
// In argocd-sops-plugin, importing runtime/debug made atinit the 224th of 496 packages to
// initialise, after 0.9 MB of allocations, instead of about the 100th, after 0.14 MB.
func TestInitialisesEarly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		t.Fatalf("go list -deps: %v: %s", err, ee.Stderr)
	} else if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, late := range []string{"runtime/debug", "runtime/metrics", "runtime/pprof", "log", "net", "regexp"} {
		if slices.Contains(deps, late) {
			t.Errorf("atinit depends on %s, which initialises late; keep it to syscall, os, fmt, strconv and strings", late)
		}
	}
}
