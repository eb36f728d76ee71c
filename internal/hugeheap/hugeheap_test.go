package hugeheap

import (
	"strings"
	"testing"
)

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		text    string
		want    Mode
		wantErr bool
	}{
		{"always [madvise] never\n", ModeMadvise, false},
		{"[always] madvise never\n", ModeAlways, false},
		{"always madvise [never]\n", ModeNever, false},
		{"always madvise never\n", "", true},
		{"", "", true},
		{"[]", "", true},
	} {
		got, err := parseMode(tc.text)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseMode(%q) = %q, %v; want %q, error %v", tc.text, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestMappingOf(t *testing.T) {
	maps := strings.Join([]string{
		"00400000-011ac000 r--p 00000000 fe:00 10717538    /tmp/plugin",
		"c000000000-c004000000 rw-p 00000000 00:00 0",
		"7ffd1000-7ffd2000 rw-p 00000000 00:00 0           [stack]",
		"",
	}, "\n")
	for _, tc := range []struct {
		addr       uintptr
		start, end uintptr
		wantErr    bool
	}{
		{0xc000000000, 0xc000000000, 0xc004000000, false},
		{0xc003ffffff, 0xc000000000, 0xc004000000, false},
		{0xc004000000, 0, 0, true}, // end is exclusive
		{0x400000, 0x400000, 0x11ac000, false},
		{0x1, 0, 0, true},
	} {
		s, e, err := mappingOf(maps, tc.addr)
		if (err != nil) != tc.wantErr || s != tc.start || e != tc.end {
			t.Errorf("mappingOf(%#x) = %#x-%#x, %v; want %#x-%#x, error %v", tc.addr, s, e, err, tc.start, tc.end, tc.wantErr)
		}
	}
	if _, _, err := mappingOf("zz-yy rw-p\n", 1); err == nil {
		t.Error("a malformed line was accepted")
	}
}
