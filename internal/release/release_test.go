package release

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nerv-platform/nerv/internal/testenv"
)

func TestWriteArchiveIsReproducible(t *testing.T) {
	files := map[string][]byte{"kubectl-nerv": []byte("binary"), "LICENSE": []byte("MIT"), "kubectl_complete-nerv": []byte(CompletionScript)}
	dir := t.TempDir()
	a, err := WriteArchive(filepath.Join(dir, "a.tar.gz"), files)
	if err != nil {
		t.Fatal(err)
	}
	b, err := WriteArchive(filepath.Join(dir, "b.tar.gz"), files)
	if err != nil {
		t.Fatal(err)
	}
	if a.SHA256 != b.SHA256 || len(a.SHA256) != 64 {
		t.Fatalf("same content, sha256 %s then %s", a.SHA256, b.SHA256)
	}
	got := readArchive(t, a.Path)
	want := map[string]int64{"LICENSE": 0o644, "kubectl-nerv": 0o755, "kubectl_complete-nerv": 0o755}
	for name, mode := range want {
		if got[name] != mode {
			t.Errorf("%s: mode %o, want %o (archive: %v)", name, got[name], mode, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("archive holds %v, want exactly %v", got, want)
	}
}

func TestKrewManifestHasOnePlatformPerKubectlNervArchive(t *testing.T) {
	var archives []Archive
	for _, p := range Platforms {
		for _, prog := range Programs {
			archives = append(archives, Archive{Program: prog, Platform: p, SHA256: strings.Repeat("a", 64)})
		}
	}
	b, err := KrewManifest("v1.2.3", archives, func(a Archive) string {
		return DownloadURL("v1.2.3", ArchiveName(a.Program, "v1.2.3", a.Platform))
	})
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Spec struct {
			Version   string `json:"version"`
			Platforms []struct {
				URI string `json:"uri"`
				Bin string `json:"bin"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Spec.Version != "v1.2.3" || len(m.Spec.Platforms) != len(Platforms) {
		t.Fatalf("version %q with %d platforms, want v1.2.3 with %d", m.Spec.Version, len(m.Spec.Platforms), len(Platforms))
	}
	for _, p := range m.Spec.Platforms {
		if !strings.Contains(p.URI, "/releases/download/v1.2.3/kubectl-nerv_v1.2.3_") || p.Bin != "kubectl-nerv" {
			t.Errorf("platform entry %+v", p)
		}
	}
	if _, err := KrewManifest("v1", nil, nil); err == nil {
		t.Error("a manifest without kubectl-nerv archives was accepted")
	}
}

// TestKrewValidatesAndInstallsTheManifest builds kubectl-nerv for this machine, packs it as a
// release does, and hands the manifest to krew's own code: validate-krew-manifest (the
// validator krew-index runs) and `krew install --manifest --archive` into a scratch KREW_ROOT,
// which checks the sha256, unpacks the files and links the binary. The installed plugin must
// then run.
func TestKrewValidatesAndInstallsTheManifest(t *testing.T) {
	validator, err := testenv.Asset("validate-krew-manifest")
	if err != nil {
		t.Fatal(err)
	}
	krew, err := testenv.Asset("krew")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := testenv.ProgramBinary(t, "kubectl-nerv")
	a, err := WriteArchive(filepath.Join(dir, ArchiveName("kubectl-nerv", "v0.0.1-test", Platform{runtime.GOOS, runtime.GOARCH})), map[string][]byte{
		"kubectl-nerv":          mustRead(t, bin),
		"kubectl_complete-nerv": []byte(CompletionScript),
		"LICENSE":               mustRead(t, "../../LICENSE"),
	})
	if err != nil {
		t.Fatal(err)
	}
	a.Program, a.Platform = "kubectl-nerv", Platform{runtime.GOOS, runtime.GOARCH}
	archives := []Archive{a}
	manifest, err := KrewManifest("v0.0.1-test", archives, func(a Archive) string {
		return DownloadURL("v0.0.1-test", filepath.Base(a.Path))
	})
	if err != nil {
		t.Fatal(err)
	}
	// krew infers the plugin name from the file name.
	manifestPath := filepath.Join(dir, "nerv.yaml")
	if err := WriteKrewManifest(manifestPath, manifest); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(validator, "-manifest", manifestPath, "-skip-install").CombinedOutput(); err != nil {
		t.Fatalf("validate-krew-manifest rejected the manifest: %v\n%s\n%s", err, out, manifest)
	}

	root := filepath.Join(dir, "krew-root")
	install := exec.Command(krew, "install", "--manifest="+manifestPath, "--archive="+archives[0].Path)
	install.Env = append(os.Environ(), "KREW_ROOT="+root)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("krew install: %v\n%s", err, out)
	}
	out, err := exec.Command(filepath.Join(root, "bin", "kubectl-nerv"), "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("installed kubectl-nerv: %v", err)
	}
	var info struct{ Version, Platform string }
	if err := json.Unmarshal(out, &info); err != nil || info.Version == "" || info.Platform != runtime.GOOS+"/"+runtime.GOARCH {
		t.Fatalf("installed kubectl-nerv reports %q (%v), want its version info for this platform", out, err)
	}
	matches, _ := filepath.Glob(filepath.Join(root, "store", "nerv", "v0.0.1-test", "kubectl_complete-nerv"))
	if len(matches) != 1 {
		t.Errorf("krew did not install kubectl_complete-nerv into the plugin's store directory")
	}

	// A manifest whose sha256 does not match the archive must be refused by krew.
	bad := bytes.Replace(manifest, []byte(archives[0].SHA256), []byte(strings.Repeat("0", 64)), 1)
	if err := os.WriteFile(manifestPath, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	install = exec.Command(krew, "install", "--manifest="+manifestPath, "--archive="+archives[0].Path)
	install.Env = append(os.Environ(), "KREW_ROOT="+filepath.Join(dir, "krew-root-2"))
	if out, err := install.CombinedOutput(); err == nil {
		t.Fatalf("krew installed an archive whose sha256 does not match the manifest:\n%s", out)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readArchive(t *testing.T, path string) map[string]int64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	modes := map[string]int64{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		modes[h.Name] = h.Mode
	}
	return modes
}

// The krew manifest in the repository (written by `make release VERSION=v0.1.0`) passes krew's
// own validator and lists every platform the release builds.
func TestCommittedKrewManifestIsValid(t *testing.T) {
	validator, err := testenv.Asset("validate-krew-manifest")
	if err != nil {
		t.Fatal(err)
	}
	const path = "../../krew/nerv.yaml"
	if out, err := exec.Command(validator, "-manifest", path, "-skip-install").CombinedOutput(); err != nil {
		t.Fatalf("validate-krew-manifest rejected %s: %v\n%s", path, err, out)
	}
	var m struct {
		Spec struct {
			Platforms []struct {
				Selector struct{ MatchLabels map[string]string } `json:"selector"`
			} `json:"platforms"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(mustRead(t, path), &m); err != nil {
		t.Fatal(err)
	}
	got := map[Platform]bool{}
	for _, p := range m.Spec.Platforms {
		got[Platform{p.Selector.MatchLabels["os"], p.Selector.MatchLabels["arch"]}] = true
	}
	for _, p := range Platforms {
		if !got[p] {
			t.Errorf("%s has no entry for %s/%s", path, p.OS, p.Arch)
		}
	}
}
