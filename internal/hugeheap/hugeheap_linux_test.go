//go:build linux

package hugeheap

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
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
	// AnonHugePages of the marked mapping right after Advise
	hugeKB  int
	hugeErr error
	mode    Mode
	skip    string
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
		if first.err == nil {
			first.hugeKB, first.hugeErr = hugeKB(first.res.Start)
		}
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

// smapsField returns a field of the /proc/self/smaps entry starting at start, e.g.
// "VmFlags" or "AnonHugePages".
func smapsField(start uintptr, field string) (string, error) {
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return "", err
	}
	in := false
	for line := range strings.Lines(string(smaps)) {
		if lo, _, err := mappingOf(line, start); err == nil {
			in = lo == start
		} else if v, ok := strings.CutPrefix(line, field+":"); ok && in {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no smaps entry starting at %#x has %s", start, field)
}

// hugeKB is the AnonHugePages of the mapping starting at start, in KiB.
func hugeKB(start uintptr) (int, error) {
	v, err := smapsField(start, "AnonHugePages")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSuffix(v, " kB"))
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
	if flags, err := smapsField(res.Start, "VmFlags"); err != nil {
		t.Error(err)
	} else if !slices.Contains(strings.Fields(flags), "hg") {
		t.Errorf("the heap mapping %#x-%#x has VmFlags %q, without hg", res.Start, res.End, flags)
	}
	runtime.GC() // frees the stretch for certain (see Advise)
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

// TestAdviseCollapsesTheHeapInUse: the mark only reaches empty 2 MiB blocks, so the blocks
// the heap had already started on are collapsed, and what was collapsed shows in smaps. A
// kernel without MADV_COLLAPSE (before 6.1) or without a free huge page collapses nothing:
// a probe on memory of the test's own tells that case from a broken Advise.
func TestAdviseCollapsesTheHeapInUse(t *testing.T) {
	if first.skip != "" {
		t.Skip(first.skip)
	}
	if first.err != nil {
		t.Fatal(first.err)
	}
	t.Logf("Advise collapsed %d blocks below the stretch", first.res.Collapsed)
	if first.res.Collapsed == 0 {
		if err := probeCollapse(); err != nil {
			t.Skipf("SKIPPED: this kernel collapses no block (%v), so Advise could not either", err)
		}
		t.Fatal("the kernel collapses a populated block, but Advise collapsed none of the heap's")
	}
	if first.hugeErr != nil {
		t.Fatal(first.hugeErr)
	}
	if got, want := first.hugeKB, first.res.Collapsed*2048; got < want {
		t.Errorf("after collapsing %d blocks the heap mapping holds %d KiB of huge pages, want at least %d", first.res.Collapsed, got, want)
	}
}

// TestAdviseKeepsNoReference: the stretch is garbage from the start, so one runtime.GC gives
// it back even under a soft memory limit below its size.
func TestAdviseKeepsNoReference(t *testing.T) {
	if first.skip != "" {
		t.Skip(first.skip)
	}
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(48 << 20))
	if _, err := Advise(stretch); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc >= stretch/2 {
		t.Errorf("after Advise and one collection the heap holds %d MiB: the %d MiB stretch was kept", ms.HeapAlloc>>20, stretch>>20)
	}
}

// probeCollapse collapses one populated 2 MiB block of an anonymous mapping of its own.
func probeCollapse() error {
	const huge = 2 << 20
	b, err := syscall.Mmap(-1, 0, 2*huge, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		return err
	}
	defer syscall.Munmap(b)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	block := (base + huge - 1) &^ (huge - 1)
	for off := block - base; off < block-base+huge; off += 4096 {
		b[off] = 1
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, block, huge, madvCollapse); errno != 0 {
		return fmt.Errorf("madvise(MADV_COLLAPSE): %w", errno)
	}
	return nil
}
