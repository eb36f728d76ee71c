package cmp_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nerv-platform/nerv/pkg/sopsdoc/sopstest"
)

// flipInENC changes one base64 character of the first ENC[...] value after marker.
func flipInENC(t *testing.T, data []byte, marker string) []byte {
	t.Helper()
	i := bytes.Index(data, []byte(marker))
	j := bytes.Index(data[i:], []byte("ENC[AES256_GCM,data:"))
	if i < 0 || j < 0 {
		t.Fatalf("no ENC value after %q", marker)
	}
	p := i + j + len("ENC[AES256_GCM,data:") + 2
	out := bytes.Clone(data)
	out[p] ^= 1 // stays in the base64 alphabet for letters and digits
	if out[p] == data[p] || !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", rune(out[p])) {
		out[p] = 'A'
		if data[p] == 'A' {
			out[p] = 'B'
		}
	}
	return out
}

func TestGenerateBadInput(t *testing.T) {
	f := newFixture(t)
	other := sopstest.Identity(t)
	good := f.enc("s.yaml", secret("db", "password", dbPassword), f.regex)

	// app builds a directory holding a valid ConfigMap plus the given files, so that a
	// failure must suppress output that would otherwise have been produced.
	app := func(files map[string][]byte) string {
		dir := t.TempDir()
		sopstest.WriteFile(t, dir, "00-ok.yaml", []byte(configMap("ok")))
		for rel, data := range files {
			sopstest.WriteFile(t, dir, rel, data)
		}
		return dir
	}
	outside := t.TempDir()
	sopstest.WriteFile(t, outside, "stolen.yaml", []byte(configMap("stolen")))
	symlinkApp := app(nil)
	if err := os.Symlink(filepath.Join(outside, "stolen.yaml"), filepath.Join(symlinkApp, "link.yaml")); err != nil {
		t.Fatal(err)
	}
	kustEscape := app(map[string][]byte{"kustomization.yaml": []byte("resources:\n  - 00-ok.yaml\n  - ../base\n")})
	kustAbs := app(map[string][]byte{"kustomization.yaml": []byte("secretGenerator:\n  - name: x\n    envs:\n      - /etc/passwd\n")})
	big := append([]byte(configMap("big")+"# "), bytes.Repeat([]byte("x"), 2048)...)

	tests := []struct {
		name     string
		dir      string
		env      map[string]string
		args     []string
		contains []string
	}{
		{"wrong key", app(map[string][]byte{"s.yaml": sopstest.MustEncrypt(t, "s.yaml", []byte(secret("db", "password", dbPassword)), []string{other.Recipient().String()}, f.regex)}), nil, nil,
			[]string{"s.yaml", "no key fits", other.Recipient().String(), f.id.Recipient().String()}},
		{"tampered value", app(map[string][]byte{"s.yaml": flipInENC(t, good, "password:")}), nil, nil,
			[]string{"s.yaml", "cannot be authenticated"}},
		{"tampered MAC", app(map[string][]byte{"s.yaml": flipInENC(t, good, "mac:")}), nil, nil,
			[]string{"s.yaml", "MAC mismatch"}},
		{"invalid YAML", app(map[string][]byte{"sub/bad.yaml": []byte("kind: ConfigMap\nmetadata:\n  name: x\n  labels: {a: b\n")}), nil, nil,
			[]string{"sub/bad.yaml", "invalid document", "line"}},
		{"file over the limit", app(map[string][]byte{"big.yaml": big}), nil, []string{"--max-file-size", "1Ki"},
			[]string{"big.yaml", "file too large", "limit 1024"}},
		{"limit from the ArgoCD env", app(map[string][]byte{"big.yaml": big}), map[string]string{"ARGOCD_ENV_SOPS_MAX_FILE_SIZE": "1024"}, nil,
			[]string{"big.yaml", "file too large"}},
		{"symlink escape", symlinkApp, nil, nil,
			[]string{"link.yaml", "outside the app directory"}},
		{"kustomize ..", kustEscape, nil, nil,
			[]string{"kustomization.yaml", "resources[1]: ../base"}},
		{"kustomize absolute path", kustAbs, nil, nil,
			[]string{"kustomization.yaml", "secretGenerator[0].envs[0]: /etc/passwd"}},
		{"empty dir", t.TempDir(), nil, nil,
			[]string{"no manifests found"}},
		{"app context from ArgoCD", app(map[string][]byte{"s.yaml": flipInENC(t, good, "mac:")}),
			map[string]string{"ARGOCD_APP_NAME": "shop", "ARGOCD_APP_NAMESPACE": "prod", "ARGOCD_APP_REVISION": "abc123"}, nil,
			[]string{"app shop (namespace prod, revision abc123)", "s.yaml"}},
		{"unreadable key file", app(nil), map[string]string{"SOPS_AGE_KEY_FILE": filepath.Join(t.TempDir(), "missing")}, nil,
			[]string{"loading age keys", "missing"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append(append([]string{"generate"}, tt.args...), tt.dir)
			code, out, stderr := f.run(tt.env, args...)
			if code == 0 {
				t.Fatalf("exit 0; stdout:\n%s", out)
			}
			if out != "" {
				t.Fatalf("stdout not empty on failure:\n%s", out)
			}
			for _, s := range tt.contains {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr %q does not mention %q", stderr, s)
				}
			}
			for _, s := range append(allSecrets, "0 successful groups", "AGE-SECRET-KEY") {
				if strings.Contains(stderr, s) {
					t.Errorf("stderr leaks %q: %s", s, stderr)
				}
			}
		})
	}
}

// Every broken file is reported in one run, sorted.
func TestGenerateReportsAllFailures(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	sopstest.WriteFile(t, dir, "b.yaml", []byte("a: [\n"))
	sopstest.WriteFile(t, dir, "a.yaml", []byte("b: {\n"))
	code, out, stderr := f.run(nil, "generate", dir)
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	ia, ib := strings.Index(stderr, "a.yaml"), strings.Index(stderr, "b.yaml")
	if ia < 0 || ib < 0 || ia > ib {
		t.Fatalf("want both files, a before b: %s", stderr)
	}
}
