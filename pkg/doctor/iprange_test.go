package doctor

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestParseAddrRange(t *testing.T) {
	tests := []struct {
		in       string
		from, to string
		wantErr  bool
	}{
		{in: "192.168.1.110-192.168.1.115", from: "192.168.1.110", to: "192.168.1.115"},
		{in: " 10.0.0.1 - 10.0.0.1 ", from: "10.0.0.1", to: "10.0.0.1"},
		{in: "192.168.1.0/24", from: "192.168.1.0", to: "192.168.1.255"},
		{in: "192.168.1.112/30", from: "192.168.1.112", to: "192.168.1.115"},
		{in: "10.0.0.0/8", from: "10.0.0.0", to: "10.255.255.255"},
		{in: "192.168.1.7/32", from: "192.168.1.7", to: "192.168.1.7"},
		{in: "fd00::/120", from: "fd00::", to: "fd00::ff"},
		{in: "192.168.1.9", from: "192.168.1.9", to: "192.168.1.9"},
		{in: "192.168.1.9-192.168.1.1", wantErr: true},
		{in: "banana", wantErr: true},
		{in: "1.2.3.4/33", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseAddrRange(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("parseAddrRange(%q) = %v, want an error", tt.in, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.from.String() != tt.from || got.to.String() != tt.to {
				t.Errorf("parseAddrRange(%q) = %s-%s, want %s-%s", tt.in, got.from, got.to, tt.from, tt.to)
			}
		})
	}
}

func TestUncovered(t *testing.T) {
	r := func(s string) addrRange {
		t.Helper()
		a, err := parseAddrRange(s)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	want := r("192.168.1.110-192.168.1.115")
	if got := uncovered(want, []addrRange{r("192.168.1.110-192.168.1.112"), r("192.168.1.113/32"), r("192.168.1.114-192.168.1.120")}); got != nil {
		t.Errorf("union covering the pool: uncovered = %v", got)
	}
	got := uncovered(want, []addrRange{r("192.168.1.111-192.168.1.114")})
	if !reflect.DeepEqual(got, []string{"192.168.1.110", "192.168.1.115"}) {
		t.Errorf("uncovered = %v", got)
	}
	if !r("10.0.0.0/8").contains(netip.MustParseAddr("10.1.2.3")) {
		t.Error("10.0.0.0/8 should contain 10.1.2.3")
	}
}
