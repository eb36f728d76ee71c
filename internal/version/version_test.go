package version

import (
	"runtime"
	"strings"
	"testing"
)

func TestGetReflectsLinkTimeValues(t *testing.T) {
	oldV, oldC, oldD := Version, Commit, Date
	t.Cleanup(func() { Version, Commit, Date = oldV, oldC, oldD })
	Version, Commit, Date = "v1.2.3", "abc1234", "2026-11-26T00:00:00Z"

	got := Get()
	if got.Version != "v1.2.3" || got.Commit != "abc1234" || got.Date != "2026-11-26T00:00:00Z" {
		t.Fatalf("Get() = %+v, want the values set at link time", got)
	}
	if got.GoVersion != runtime.Version() || got.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("Get() = %+v, want the running toolchain and platform", got)
	}
	if s := got.String(); !strings.HasPrefix(s, "v1.2.3 (commit abc1234") {
		t.Fatalf("String() = %q", s)
	}
}
