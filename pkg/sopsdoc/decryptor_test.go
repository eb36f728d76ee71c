package sopsdoc_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"sigs.k8s.io/yaml"

	"github.com/nerv-platform/nerv/internal/testenv"
	"github.com/nerv-platform/nerv/pkg/sopsdoc"
	"github.com/nerv-platform/nerv/pkg/sopsdoc/sopstest"
)

const secretYAML = `apiVersion: v1
kind: Secret
metadata:
  name: db
  namespace: prod
type: Opaque
stringData:
  password: hunter2-very-secret
data:
  token: c2VjcmV0LXRva2VuLXZhbHVl
`

const configMapYAML = `apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  level: debug
`

const secretJSON = `{
  "apiVersion": "v1",
  "kind": "Secret",
  "metadata": {"name": "api"},
  "stringData": {"key": "json-secret-value-42"}
}`

var secretStrings = []string{"hunter2-very-secret", "c2VjcmV0LXRva2VuLXZhbHVl", "json-secret-value-42", "env-secret-value-7"}

func newDecryptor(t *testing.T, ids ...*age.X25519Identity) *sopsdoc.Decryptor {
	t.Helper()
	var opts []sopsdoc.Option
	for _, id := range ids {
		opts = append(opts, sopsdoc.WithIdentities(id))
	}
	d, err := sopsdoc.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// objects parses a YAML (or JSON) stream into generic objects for comparison.
func objects(t *testing.T, stream []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, doc := range strings.Split(string(stream), "\n---\n") {
		if strings.TrimSpace(strings.TrimPrefix(doc, "---")) == "" {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("invalid YAML %q: %v", doc, err)
		}
		out = append(out, m)
	}
	return out
}

func assertSameObjects(t *testing.T, got, want []byte) {
	t.Helper()
	g, w := objects(t, got), objects(t, want)
	gj, _ := yaml.Marshal(g)
	wj, _ := yaml.Marshal(w)
	if !bytes.Equal(gj, wj) {
		t.Fatalf("decrypted objects differ\n got: %s\nwant: %s", gj, wj)
	}
}

func TestDecryptRoundTrip(t *testing.T) {
	id := sopstest.Identity(t)
	other := sopstest.Identity(t)
	recips := []string{id.Recipient().String()}
	regex := sopstest.Options{EncryptedRegex: "^(data|stringData)$"}

	multi := []byte(secretYAML + "---\n" + configMapYAML)
	separate := append(append(sopstest.MustEncrypt(t, "a.yaml", []byte(secretYAML), recips, regex), []byte("---\n"+configMapYAML+"---\n")...),
		sopstest.MustEncrypt(t, "b.yaml", []byte(strings.ReplaceAll(secretYAML, "name: db", "name: db2")), []string{other.Recipient().String(), recips[0]}, sopstest.Options{})...)

	tests := []struct {
		name      string
		file      string
		encrypted []byte
		want      []byte
		wantEnc   bool
	}{
		{"secret with encrypted_regex", "secret.yaml", sopstest.MustEncrypt(t, "s.yaml", []byte(secretYAML), recips, regex), []byte(secretYAML), true},
		{"fully encrypted", "secret.enc.yml", sopstest.MustEncrypt(t, "s.yaml", []byte(secretYAML), recips, sopstest.Options{}), []byte(secretYAML), true},
		{"json", "secret.json", sopstest.MustEncrypt(t, "s.json", []byte(secretJSON), recips, regex), []byte(secretJSON), true},
		{"multi-document by sops", "all.yaml", sopstest.MustEncrypt(t, "m.yaml", multi, recips, regex), multi, true},
		{"concatenated runs and a plain document", "mixed.yaml", separate,
			[]byte(secretYAML + "---\n" + configMapYAML + "---\n" + strings.ReplaceAll(secretYAML, "name: db", "name: db2")), true},
		{"plain yaml passes through", "cm.yaml", []byte(configMapYAML), []byte(configMapYAML), false},
		{"plain json passes through", "cm.json", []byte(`{"kind":"ConfigMap"}`), []byte(`{"kind":"ConfigMap"}`), false},
	}
	d := newDecryptor(t, id)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, enc, err := d.Decrypt(tt.file, tt.encrypted)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if enc != tt.wantEnc {
				t.Fatalf("encrypted = %v, want %v", enc, tt.wantEnc)
			}
			if !tt.wantEnc && !bytes.Equal(got, tt.encrypted) {
				t.Fatalf("plain file changed:\n%s", got)
			}
			assertSameObjects(t, got, tt.want)
			if tt.wantEnc && bytes.Contains(tt.encrypted, []byte("hunter2-very-secret")) {
				t.Fatal("fixture is not encrypted")
			}
		})
	}
}

func TestEncryptedRegexLeavesMetadataReadable(t *testing.T) {
	id := sopstest.Identity(t)
	enc := sopstest.MustEncrypt(t, "s.yaml", []byte(secretYAML), []string{id.Recipient().String()}, sopstest.Options{EncryptedRegex: "^(data|stringData)$"})
	if !bytes.Contains(enc, []byte("name: db")) || bytes.Contains(enc, []byte("hunter2")) {
		t.Fatalf("encrypted_regex fixture wrong:\n%s", enc)
	}
	if !sopsdoc.Detect("s.yaml", enc) || sopsdoc.Detect("s.yaml", []byte(secretYAML)) {
		t.Fatal("Detect disagrees with the fixture")
	}
}

func TestDecryptFlatFormats(t *testing.T) {
	id := sopstest.Identity(t)
	recips := []string{id.Recipient().String()}
	d := newDecryptor(t, id)
	tests := []struct{ file, plain string }{
		{"db.env", "USER=app\nPASSWORD=env-secret-value-7\n"},
		{"tls.crt", "-----BEGIN CERTIFICATE-----\nenv-secret-value-7\n"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			enc := sopstest.MustEncrypt(t, tt.file, []byte(tt.plain), recips, sopstest.Options{})
			if !sopsdoc.Detect(tt.file, enc) {
				t.Fatalf("not detected:\n%s", enc)
			}
			got, wasEnc, err := d.Decrypt(tt.file, enc)
			if err != nil || !wasEnc {
				t.Fatalf("Decrypt = %v, %v", wasEnc, err)
			}
			if string(got) != tt.plain {
				t.Fatalf("got %q, want %q", got, tt.plain)
			}
		})
	}
}

// tamper flips one base64 character inside the n-th ENC[...] payload after marker.
func tamper(t *testing.T, data []byte, marker string) []byte {
	t.Helper()
	i := bytes.Index(data, []byte(marker))
	if i < 0 {
		t.Fatalf("marker %q not in fixture", marker)
	}
	j := bytes.Index(data[i:], []byte("ENC[AES256_GCM,data:"))
	if j < 0 {
		t.Fatalf("no ENC value after %q", marker)
	}
	p := i + j + len("ENC[AES256_GCM,data:") + 2
	out := bytes.Clone(data)
	if out[p] == 'A' {
		out[p] = 'B'
	} else {
		out[p] = 'A'
	}
	return out
}

func TestDecryptErrors(t *testing.T) {
	id := sopstest.Identity(t)
	wrong := sopstest.Identity(t)
	recips := []string{id.Recipient().String()}
	enc := sopstest.MustEncrypt(t, "s.yaml", []byte(secretYAML), recips, sopstest.Options{EncryptedRegex: "^(data|stringData)$"})

	tests := []struct {
		name     string
		d        *sopsdoc.Decryptor
		file     string
		data     []byte
		want     error
		contains []string
	}{
		{"wrong key", newDecryptor(t, wrong), "secret.yaml", enc, sopsdoc.ErrNoMatchingKey,
			[]string{"secret.yaml", id.Recipient().String(), wrong.Recipient().String(), "holds age keys"}},
		{"no key at all", newDecryptor(t), "secret.yaml", enc, sopsdoc.ErrNoMatchingKey,
			[]string{"secret.yaml", id.Recipient().String(), "holds no age key", "SOPS_AGE_KEY_FILE"}},
		{"tampered value", newDecryptor(t, id), "secret.yaml", tamper(t, enc, "password:"), sopsdoc.ErrTampered,
			[]string{"secret.yaml", "modified"}},
		{"tampered MAC", newDecryptor(t, id), "secret.yaml", tamper(t, enc, "mac:"), sopsdoc.ErrMACMismatch,
			[]string{"secret.yaml", "changed after it was encrypted"}},
		{"unencrypted value edited", newDecryptor(t, id), "secret.yaml", bytes.Replace(enc, []byte("name: db"), []byte("name: dc"), 1), sopsdoc.ErrMACMismatch,
			[]string{"secret.yaml"}},
		{"invalid yaml", newDecryptor(t, id), "bad.yaml", []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: [x\n"), sopsdoc.ErrInvalid,
			[]string{"bad.yaml", "line"}},
		{"invalid json", newDecryptor(t, id), "bad.json", []byte("{\n  \"a\": 1,\n  \"b\": }\n"), sopsdoc.ErrInvalid,
			[]string{"bad.json", "line 3"}},
		{"over the limit", mustNew(t, sopsdoc.WithIdentities(id), sopsdoc.WithMaxFileSize(100)), "big.yaml", enc, sopsdoc.ErrTooLarge,
			[]string{"big.yaml", "limit 100"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _, err := tt.d.Decrypt(tt.file, tt.data)
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			if out != nil {
				t.Fatalf("output returned with error: %q", out)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v is not %v", err, tt.want)
			}
			for _, s := range tt.contains {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			for _, s := range append(secretStrings, "0 successful groups", "AGE-SECRET-KEY") {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error leaks %q: %v", s, err)
				}
			}
		})
	}
}

func mustNew(t *testing.T, opts ...sopsdoc.Option) *sopsdoc.Decryptor {
	t.Helper()
	d, err := sopsdoc.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestKeysFromEnv(t *testing.T) {
	fileID, envID := sopstest.Identity(t), sopstest.Identity(t)
	keyFile := filepath.Join(t.TempDir(), "keys.txt")
	if err := os.WriteFile(keyFile, []byte("# created: test\n# public key: x\n"+fileID.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{sopsdoc.EnvAgeKeyFile: keyFile, sopsdoc.EnvAgeKey: envID.String()}
	d, err := sopsdoc.New(sopsdoc.WithKeysFromEnv(func(k string) string { return env[k] }))
	if err != nil {
		t.Fatal(err)
	}
	if got := len(d.PublicKeys()); got != 2 {
		t.Fatalf("held %d keys, want 2", got)
	}
	for _, id := range []*age.X25519Identity{fileID, envID} {
		enc := sopstest.MustEncrypt(t, "s.yaml", []byte(secretYAML), []string{id.Recipient().String()}, sopstest.Options{})
		if _, _, err := d.Decrypt("s.yaml", enc); err != nil {
			t.Fatalf("key %s: %v", id.Recipient(), err)
		}
	}

	badFile := filepath.Join(t.TempDir(), "bad.txt")
	if err := os.WriteFile(badFile, []byte("AGE-SECRET-KEY-1NOTAKEY\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, opt := range map[string]sopsdoc.Option{
		"missing file": sopsdoc.WithAgeKeyFile(filepath.Join(t.TempDir(), "absent")),
		"bad file":     sopsdoc.WithAgeKeyFile(badFile),
		"bad env":      sopsdoc.WithAgeKeys(sopsdoc.EnvAgeKey, "AGE-SECRET-KEY-1NOTAKEY"),
	} {
		if _, err := sopsdoc.New(opt); err == nil {
			t.Errorf("%s: New succeeded", name)
		} else if strings.Contains(err.Error(), "NOTAKEY") {
			t.Errorf("%s: error quotes the key: %v", name, err)
		}
	}
}

// TestDecryptFileFromSopsCLI decrypts files the real sops binary encrypted and compares the
// plaintext byte for byte with what `sops decrypt` prints for them.
func TestDecryptFileFromSopsCLI(t *testing.T) {
	sopsBin, err := testenv.Asset("sops")
	if err != nil {
		t.Fatal(err)
	}
	id := sopstest.Identity(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "keys.txt")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sops := func(args ...string) []byte {
		t.Helper()
		cmd := exec.Command(sopsBin, args...)
		cmd.Env = append(os.Environ(), "SOPS_AGE_RECIPIENTS="+id.Recipient().String(), "SOPS_AGE_KEY_FILE="+keyFile)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("sops %s: %v: %s", args[0], err, stderr.String())
		}
		return out
	}
	for name, tt := range map[string]struct {
		plain string
		args  []string
	}{
		"secret, encrypted_regex": {secretYAML, []string{"--encrypted-regex", "^(data|stringData)$"}},
		// Comments and values YAML could read as other types: the plugin writes these itself
		// instead of through sops' emitter (emit.go), so they must come out as sops writes them.
		"comments and tricky values": {`# head
kind: ConfigMap # inline
data:
  # before a
  a: "yes"
  b: "1:20"
  c: "007"
  d: plain words
  e: "x #y"
  f: |
    two
    lines
  g: ""
  h: grüße
"n": 42
t: true
z: null
list:
  - "on"
  - "off"
# tail
`, nil},
	} {
		t.Run(name, func(t *testing.T) {
			plainPath := filepath.Join(dir, "secret.yaml")
			if err := os.WriteFile(plainPath, []byte(tt.plain), 0o600); err != nil {
				t.Fatal(err)
			}
			enc := sops(append(append([]string{"encrypt"}, tt.args...), plainPath)...)
			encPath := filepath.Join(dir, "secret.enc.yaml")
			if err := os.WriteFile(encPath, enc, 0o600); err != nil {
				t.Fatal(err)
			}
			want := sops("--indent", "2", "decrypt", encPath) // the plugin writes Kubernetes-style 2-space YAML
			got, wasEnc, err := newDecryptor(t, id).Decrypt("secret.yaml", enc)
			if err != nil || !wasEnc {
				t.Fatalf("Decrypt = %v, %v", wasEnc, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("plaintext differs from sops decrypt\n--- sops:\n%s\n--- plugin:\n%s", want, got)
			}
			assertSameObjects(t, got, []byte(tt.plain))
		})
	}
}
