// Command release cross-builds NERV's three programs into reproducible archives with a
// SHA256SUMS file, and fills the krew manifest for kubectl-nerv. `make release` runs it, then
// checks the manifest with krew's own validator.
//
//	go run ./hack/release --version v0.1.0 --out dist --krew krew/nerv.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/nerv-platform/nerv/internal/release"
)

func main() {
	var o release.Options
	var platforms, krew string
	flag.StringVar(&o.Version, "version", "v0.0.0-dev", "release version (a git tag)")
	flag.StringVar(&o.Commit, "commit", "unknown", "git commit")
	flag.StringVar(&o.Date, "date", "unknown", "build date")
	flag.StringVar(&o.Out, "out", "dist", "output directory")
	flag.StringVar(&o.Root, "root", ".", "module root")
	flag.StringVar(&platforms, "platforms", "linux_amd64,linux_arm64,darwin_amd64,darwin_arm64", "comma-separated GOOS_GOARCH list")
	flag.StringVar(&krew, "krew", "krew/nerv.yaml", "krew manifest to write")
	flag.Parse()

	for _, p := range strings.Split(platforms, ",") {
		goos, arch, ok := strings.Cut(strings.TrimSpace(p), "_")
		if !ok {
			fail(fmt.Errorf("--platforms: %q is not GOOS_GOARCH", p))
		}
		o.Platforms = append(o.Platforms, release.Platform{OS: goos, Arch: arch})
	}
	o.Programs = release.Programs
	o.Files = map[string][]byte{}
	for _, f := range []string{"LICENSE", "README.md"} {
		b, err := os.ReadFile(f)
		if err != nil {
			fail(err)
		}
		o.Files[f] = b
	}
	o.Log = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "release: "+format+"\n", args...) }

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	archives, err := release.Build(ctx, o)
	if err != nil {
		fail(err)
	}
	manifest, err := release.KrewManifest(o.Version, archives, func(a release.Archive) string {
		return release.DownloadURL(o.Version, release.ArchiveName(a.Program, o.Version, a.Platform))
	})
	if err != nil {
		fail(err)
	}
	if err := release.WriteKrewManifest(krew, manifest); err != nil {
		fail(err)
	}
	fmt.Fprintf(os.Stderr, "release: %d archives and SHA256SUMS in %s; krew manifest %s\n", len(archives), o.Out, krew)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "release: %v\n", err)
	os.Exit(1)
}
