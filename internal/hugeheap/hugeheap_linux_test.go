//go:build linux

package hugeheap

import (
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

// Advise is meant to run first thing in a process, while the heap holds no freed pages the
// runtime would have to zero for the stretch. TestMain gives it that, once per test binary.
var first struct {
	res    Result
	err    error
	faults int64
	mode   Mode
	skip   string
}

const stretch = 64 << 20

func TestMain(m *testing.M) {
	if text, err := os.ReadFile(modeFile); err != nil {
		first.skip = "no transparent huge pages here: " + err.Error()
	} else if first.mode, _ = parseMode(string(text)); first.mode != ModeMadvise {
		first.skip = "THP mode is " + string(first.mode) + "; Advise only acts in madvise mode"
	} else {
		before := minorFaults()
		first.res, first.err = Advise(stretch)
		first.faults = minorFaults() - before
	}
	os.Exit(m.Run())
}

func minorFaults() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return ru.Minflt
}

// vmFlags returns the VmFlags of the /proc/self/smaps entry starting at start.
func vmFlags(t *testing.T, start uintptr) []string {
	t.Helper()
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Fatal(err)
	}
	in := false
	for line := range strings.Lines(string(smaps)) {
		if f, ok := strings.CutPrefix(line, "VmFlags:"); ok {
			if in {
				return strings.Fields(f)
			}
			continue
		}
		if lo, _, err := mappingOf(line, start); err == nil {
			in = lo == start
		}
	}
	t.Fatalf("no smaps entry starts at %#x", start)
	return nil
}

// TestAdviseMarksTheHeap runs against this machine's kernel: the heap mapping gets the
// MADV_HUGEPAGE flag ("hg" in smaps), later heap allocations land in it, and Advise itself
// faults in none of the stretch it makes the runtime map.
func TestAdviseMarksTheHeap(t *testing.T) {
	if first.skip != "" {
		t.Skip(first.skip)
	}
	res := first.res
	if first.err != nil {
		t.Fatal(first.err)
	}
	if res.Mode != ModeMadvise || res.Bytes() < stretch/2 {
		t.Fatalf("Advise(%d) = %+v (%d bytes marked); want the madvise mode and at least %d bytes", stretch, res, res.Bytes(), stretch/2)
	}
	// Touching the stretch would be 16,384 faults with 4 KiB pages; reading two small sysfs
	// files and the maps costs a few dozen.
	if first.faults > 1000 && !raceEnabled {
		t.Errorf("Advise caused %d page faults: it touched the memory it only meant to map", first.faults)
	}
	if flags := vmFlags(t, res.Start); !slices.Contains(flags, "hg") {
		t.Errorf("the heap mapping %#x-%#x has VmFlags %v, without hg", res.Start, res.End, flags)
	}
	runtime.GC() // frees the stretch, as the plugin's first collection does
	before := minorFaults()
	buf := make([]byte, 16<<20)
	if p := uintptr(unsafe.Pointer(unsafe.SliceData(buf))); p < res.Start || p >= res.End {
		t.Errorf("a 16 MiB allocation after Advise lies at %#x, outside the marked %#x-%#x", p, res.Start, res.End)
	}
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	// Logged, not asserted: whether the kernel finds free 2 MiB pages depends on the host.
	t.Logf("allocating and touching 16 MiB of marked heap: %d page faults (4,096 with 4 KiB pages)", minorFaults()-before)
}

// TestAdviseRespectsTheMemoryLimit: under a soft memory limit with no room for the stretch,
// Advise allocates nothing and says why.
func TestAdviseRespectsTheMemoryLimit(t *testing.T) {
	if first.skip != "" {
		t.Skip(first.skip)
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(48 << 20))
	before := minorFaults()
	res, err := Advise(stretch)
	if err == nil || !strings.Contains(err.Error(), "memory limit") || res.Bytes() != 0 {
		t.Fatalf("Advise under a 48 MiB limit = %+v, %v; want nothing marked and an error naming the limit", res, err)
	}
	if n := minorFaults() - before; n > 100 && !raceEnabled {
		t.Errorf("a refused Advise caused %d page faults", n)
	}
}
