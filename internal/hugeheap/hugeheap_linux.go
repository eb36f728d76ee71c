//go:build linux

package hugeheap

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

const (
	modeFile     = "/sys/kernel/mm/transparent_hugepage/enabled"
	pageSizeFile = "/sys/kernel/mm/transparent_hugepage/hpage_pmd_size"
	// madvCollapse is MADV_COLLAPSE (Linux 6.1), which syscall does not name.
	madvCollapse = 25
	// maxCollapse bounds the populated heap Advise collapses: early in a process it is a few
	// MiB, and each block costs about half a millisecond.
	maxCollapse = 16 << 20
)

// Advise makes the Go runtime map at least size bytes of heap and marks the whole heap mapping
// holding them MADV_HUGEPAGE, so the heap grows into that stretch with 2 MiB pages. The mark
// only reaches 2 MiB blocks that hold no page yet; the blocks below the stretch that already
// hold some (up to 16 MiB of them) are collapsed into huge pages (MADV_COLLAPSE, best effort).
//
// The stretch is a large allocation dropped at once, never touched (a fresh large allocation
// is not zeroed): it is garbage from the start. Allocating it starts a collection, which can
// still see it from the allocating frame, so it is certain to be freed only by the next
// collection: call runtime.GC after Advise when the heap should get the stretch back now.
// Call Advise early, before the program has freed much: freed pages would have to be zeroed,
// and so touched, to serve the stretch. It does nothing unless THP is in madvise mode.
// Errors mean nothing was marked and are safe to ignore.
//
// Advise uses neither runtime/debug nor anything else that initialises late, so that a
// package calling it from init (internal/hugeheap/atinit) runs before most of a large
// program's packages have allocated.
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
	huge := uintptr(2 << 20)
	if b, err := os.ReadFile(pageSizeFile); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			huge = uintptr(n)
		}
	}
	// Only the address is kept: the mapping outlives the allocation, and no reference to the
	// allocation must stay in this frame.
	at := uintptr(unsafe.Pointer(unsafe.SliceData(make([]byte, size))))
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return res, fmt.Errorf("reading the process' mappings: %w", err)
	}
	lo, hi, err := mappingOf(string(maps), at)
	if err != nil {
		return res, fmt.Errorf("/proc/self/maps: %w", err)
	}
	start, end := (lo+huge-1)&^(huge-1), hi&^(huge-1)
	if start >= end {
		return res, fmt.Errorf("heap mapping %#x-%#x holds no whole huge page", lo, hi)
	}
	if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, start, end-start, syscall.MADV_HUGEPAGE); errno != 0 {
		return res, fmt.Errorf("madvise(MADV_HUGEPAGE) on %#x-%#x: %w", start, end, errno)
	}
	res.Start, res.End = start, end
	// Block by block: an empty block fails (EINVAL) without stopping the others, and a failure
	// (older kernel, no free huge page) only leaves that block to 4 KiB faults. EAGAIN is
	// transient (a page still in a per-CPU batch, or busy under another thread of the
	// runtime): about one run in ten on this project's machine, so it is tried again.
	// The blocks from the one holding the stretch's start down, at most maxCollapse of them.
	last := at &^ (huge - 1)
	from := start
	if last >= start+maxCollapse {
		from = last - maxCollapse + huge
	}
	for b := from; b <= last && b+huge <= end; b += huge {
		if collapse(b, huge) {
			res.Collapsed++
		}
	}
	return res, nil
}

// collapse turns the populated block at b into a huge page, trying a transient failure again.
func collapse(b, huge uintptr) bool {
	for range 4 {
		_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, b, huge, madvCollapse)
		if errno != syscall.EAGAIN {
			return errno == 0
		}
	}
	return false
}
