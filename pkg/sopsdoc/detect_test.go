package sopsdoc_test

import (
	"errors"
	"testing"

	"github.com/nerv-platform/nerv/pkg/sopsdoc"
	"github.com/nerv-platform/nerv/pkg/sopsdoc/sopstest"
)

func TestDetect(t *testing.T) {
	tests := []struct {
		name, file, data string
		want             bool
	}{
		{"plain yaml", "a.yaml", configMapYAML, false},
		{"key named sops but not metadata", "a.yaml", "sops: plain\n", false},
		{"sops metadata in second document", "a.yaml", configMapYAML + "---\nkind: Secret\nsops:\n  mac: ENC[x]\n", true},
		{"invalid yaml", "a.yaml", "sops: [\n", false},
		{"json with sops", "a.json", `{"a":"ENC[x]","sops":{"mac":"ENC[y]"}}`, true},
		{"json list", "a.json", `[{"sops":{"mac":"x"}}]`, false},
		{"dotenv", "a.env", "A=ENC[x]\nsops_mac=ENC[y]\n", true},
		{"dotenv plain", "a.env", "A=b\n", false},
		{"binary", "a.crt", `{"data":"ENC[x]","sops":{"mac":"ENC[y]"}}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sopsdoc.Detect(tt.file, []byte(tt.data)); got != tt.want {
				t.Fatalf("Detect = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestFormatForPath(t *testing.T) {
	for file, want := range map[string]sopsdoc.Format{
		"a.yaml": sopsdoc.FormatYAML, "b.YML": sopsdoc.FormatYAML, "c.json": sopsdoc.FormatJSON,
		"d.env": sopsdoc.FormatDotenv, "e.ini": sopsdoc.FormatINI, "f.crt": sopsdoc.FormatBinary, "noext": sopsdoc.FormatBinary,
	} {
		if got := sopsdoc.FormatForPath(file); got != want {
			t.Errorf("FormatForPath(%s) = %s, want %s", file, got, want)
		}
	}
}

// FuzzDecrypt feeds arbitrary bytes through detection and decryption: it must never panic,
// Detect and Decrypt must agree, and every failure must be one of the package's errors.
func FuzzDecrypt(f *testing.F) {
	id := sopstest.Identity(f)
	recips := []string{id.Recipient().String()}
	f.Add("s.yaml", sopstest.MustEncrypt(f, "s.yaml", []byte(secretYAML), recips, sopstest.Options{EncryptedRegex: "^(data|stringData)$"}))
	f.Add("s.json", sopstest.MustEncrypt(f, "s.json", []byte(secretJSON), recips, sopstest.Options{}))
	f.Add("m.yaml", []byte(secretYAML+"---\n"+configMapYAML))
	f.Add("a.env", []byte("A=ENC[x]\nsops_mac=ENC[y]\n"))
	f.Add("a.yaml", []byte("sops:\n  mac: ''\n"))
	d, err := sopsdoc.New(sopsdoc.WithIdentities(id), sopsdoc.WithMaxFileSize(1<<16))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		detected := sopsdoc.Detect(name, data)
		out, enc, err := d.Decrypt(name, data)
		if err != nil {
			var fe *sopsdoc.FileError
			var ke *sopsdoc.NoKeyError
			if !errors.As(err, &fe) && !errors.As(err, &ke) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			if out != nil {
				t.Fatal("output with error")
			}
			return
		}
		if enc && !detected {
			t.Fatalf("decrypted a file Detect calls plain")
		}
	})
}
