package doctor

import (
	"fmt"
	"net/netip"
	"strings"
)

// addrRange is an inclusive address range.
type addrRange struct{ from, to netip.Addr }

func (r addrRange) contains(a netip.Addr) bool {
	return r.from.Compare(a) <= 0 && a.Compare(r.to) <= 0
}

// parseAddrRange reads a MetalLB address entry: "a.b.c.d-e.f.g.h", a CIDR, or one address.
func parseAddrRange(s string) (addrRange, error) {
	s = strings.TrimSpace(s)
	if from, to, ok := strings.Cut(s, "-"); ok {
		f, err := netip.ParseAddr(strings.TrimSpace(from))
		if err != nil {
			return addrRange{}, fmt.Errorf("range %q: %w", s, err)
		}
		t, err := netip.ParseAddr(strings.TrimSpace(to))
		if err != nil {
			return addrRange{}, fmt.Errorf("range %q: %w", s, err)
		}
		if t.Less(f) {
			return addrRange{}, fmt.Errorf("range %q ends before it starts", s)
		}
		return addrRange{f, t}, nil
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return addrRange{}, fmt.Errorf("CIDR %q: %w", s, err)
		}
		p = p.Masked()
		// The last address: every host bit set.
		b := p.Addr().AsSlice()
		for i := range b {
			switch lo := i * 8; {
			case lo >= p.Bits():
				b[i] = 0xff
			case lo+8 > p.Bits():
				b[i] |= 0xff >> (p.Bits() - lo)
			}
		}
		last, _ := netip.AddrFromSlice(b)
		return addrRange{p.Addr(), last}, nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return addrRange{}, fmt.Errorf("address %q: %w", s, err)
	}
	return addrRange{a, a}, nil
}

// uncovered returns the addresses of want that none of ranges contains (at most 10, for a
// readable message), walking at most 65536 addresses.
func uncovered(want addrRange, ranges []addrRange) []string {
	var out []string
	for a, n := want.from, 0; a.IsValid() && a.Compare(want.to) <= 0 && n < 1<<16; a, n = a.Next(), n+1 {
		in := false
		for _, r := range ranges {
			if r.contains(a) {
				in = true
				break
			}
		}
		if !in {
			out = append(out, a.String())
			if len(out) == 10 {
				break
			}
		}
	}
	return out
}
