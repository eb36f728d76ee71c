// Package hugeheap asks Linux to back the Go heap with transparent huge pages.
//
// Where the kernel's transparent huge pages (THP) are in "madvise" mode, only memory a
// process marks with madvise(MADV_HUGEPAGE) gets 2 MiB pages, and the Go runtime marks only
// some of its own metadata, not the heap. A short batch process that allocates hundreds of
// MiB then touches its heap 4 KiB at a time: every fresh page is a page fault. On a virtual
// machine a fault is expensive (about 14 µs on this project's CI machine, see
// docs/PERFORMANCE.md), and faults from two threads of one process contend.
//
// The runtime maps heap address space in pieces as the heap grows, each with its own mmap,
// so the mark has to come after the mapping. Advise makes the runtime map a stretch up
// front (a large allocation it never touches) and marks the mapping that holds it. The mark
// only changes 2 MiB blocks that hold no page yet, so Advise also collapses the few blocks
// the heap has already started on. Package atinit does all this during package
// initialisation, before a large program's packages allocate.
package hugeheap

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Mode is the kernel's THP setting (/sys/kernel/mm/transparent_hugepage/enabled).
type Mode string

// THP modes.
const (
	ModeAlways  Mode = "always"
	ModeMadvise Mode = "madvise"
	ModeNever   Mode = "never"
)

// ErrUnsupported: this platform has no transparent huge pages to ask for.
var ErrUnsupported = errors.New("transparent huge pages are not supported on this platform")

// Result says what Advise did.
type Result struct {
	Mode Mode
	// Start and End delimit the heap mapping marked MADV_HUGEPAGE; both zero when nothing was
	// marked (THP in "always" mode needs no mark, in "never" mode the mark would be ignored).
	Start, End uintptr
	// Collapsed counts the 2 MiB blocks below the stretch, already in use, that were turned
	// into huge pages.
	Collapsed int
}

// Bytes is the size of the marked range.
func (r Result) Bytes() uintptr { return r.End - r.Start }

// parseMode reads the bracketed choice of the sysfs file, e.g. "always [madvise] never".
func parseMode(text string) (Mode, error) {
	for _, f := range strings.Fields(text) {
		if len(f) > 2 && f[0] == '[' && f[len(f)-1] == ']' {
			return Mode(f[1 : len(f)-1]), nil
		}
	}
	return "", fmt.Errorf("no [selected] mode in %q", strings.TrimSpace(text))
}

// mappingOf returns the bounds of the line of /proc/self/maps whose range holds addr.
func mappingOf(maps string, addr uintptr) (start, end uintptr, err error) {
	for line := range strings.Lines(maps) {
		bounds, _, _ := strings.Cut(line, " ")
		lo, hi, ok := strings.Cut(bounds, "-")
		if !ok {
			continue
		}
		s, err1 := strconv.ParseUint(lo, 16, 64)
		e, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil {
			return 0, 0, fmt.Errorf("maps line %q: not a range", strings.TrimSpace(line))
		}
		if uintptr(s) <= addr && addr < uintptr(e) {
			return uintptr(s), uintptr(e), nil
		}
	}
	return 0, 0, fmt.Errorf("no mapping holds %#x", addr)
}
