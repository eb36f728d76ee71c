//go:build linux

package hugeheap

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

const (
	modeFile     = "/sys/kernel/mm/transparent_hugepage/enabled"
	pageSizeFile = "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"
	// minHeadroom is what must stay under the memory limit beside the stretch.
	minHeadroom = 16 << 20
)

// Advise makes the Go runtime map at least size bytes of heap and marks the whole heap mapping
// holding them MADV_HUGEPAGE, so the heap grows into that stretch with 2 MiB pages. It
// touches none of the memory (a fresh large allocation is not zeroed) and returns it to the
// heap at once (one collection: 3–9 ms in the plugin); what stays is the mark on the
// mapping. Call it early, before the program has freed much: freed pages would have to be
// zeroed, and so touched, to serve the stretch. It does nothing unless THP is in madvise
// mode, and refuses when the soft memory limit leaves no room for the stretch. Errors mean
// nothing was marked and are safe to ignore.
func Advise(size int) (Result, error) {
	text, err := os.ReadFile(modeFile)
	if err != nil {
		return Result{}, fmt.Errorf("transparent huge pages: %w", err)
	}
	mode, err := parseMode(string(text))
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", modeFile, err)
	}
	res := Result{Mode: mode}
	if mode != ModeMadvise || size <= 0 {
		return res, nil
	}
	// The stretch is held while it is marked. Near the soft memory limit the runtime would
	// collect in vain meanwhile, so a limit without room for it (and the heap) means no.
	if limit := debug.SetMemoryLimit(-1); limit-int64(size) < minHeadroom {
		return res, fmt.Errorf("a %d MiB stretch leaves less than %d MiB under the memory limit of %d MiB",
			size>>20, minHeadroom>>20, limit>>20)
	}
	huge := uintptr(2 << 20)
	if b, err := os.ReadFile(pageSizeFile); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			huge = uintptr(n)
		}
	}
	start, end, err := markStretch(size, huge)
	if err != nil {
		return res, err
	}
	// Free the stretch now. Left to a later collection, it would still be held while the
	// program's first allocations go on, and those would map more heap past it, with small
	// pages.
	runtime.GC()
	res.Start, res.End = start, end
	return res, nil
}

// markStretch allocates size bytes, marks the whole heap mapping holding them and drops them.
func markStretch(size int, huge uintptr) (start, end uintptr, err error) {
	// The stretch alone would start a collection that frees nothing; Advise's own frees it.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	stretch := make([]byte, size)
	defer runtime.KeepAlive(stretch)
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, 0, fmt.Errorf("reading the process' mappings: %w", err)
	}
	lo, hi, err := mappingOf(string(maps), uintptr(unsafe.Pointer(unsafe.SliceData(stretch))))
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/self/maps: %w", err)
	}
	start, end = (lo+huge-1)&^(huge-1), hi&^(huge-1)
	if start >= end {
		return 0, 0, fmt.Errorf("heap mapping %#x-%#x holds no whole huge page", lo, hi)
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, syscall.MADV_HUGEPAGE); errno != 0 {
		return 0, 0, fmt.Errorf("madvise(MADV_HUGEPAGE) on %#x-%#x: %w", start, end, errno)
	}
	return start, end, nil
}
