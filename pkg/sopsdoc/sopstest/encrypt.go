// Package sopstest makes SOPS fixtures for tests and benchmarks with the real sops library
// encrypt path (the same calls `sops encrypt` makes) and real age keys. It is test support:
// nothing in the programs imports it.
package sopstest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keys"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/stores/dotenv"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"github.com/getsops/sops/v3/version"

	"github.com/nerv-platform/nerv/pkg/sopsdoc"
)

// Options select what sops encrypts, as the CLI flags of the same names do. With neither
// set every value is encrypted (sops' default, which keys ending in _unencrypted escape).
type Options struct {
	EncryptedRegex   string
	UnencryptedRegex string
}

// Encrypt encrypts plain (in the format name's extension selects) for the age recipients.
func Encrypt(name string, plain []byte, recipients []string, opts Options) ([]byte, error) {
	format := sopsdoc.FormatForPath(name)
	var store sops.Store
	switch format {
	case sopsdoc.FormatYAML:
		store = sopsyaml.NewStore(&config.YAMLStoreConfig{Indent: 2})
	case sopsdoc.FormatJSON:
		store = sopsjson.NewStore(&config.JSONStoreConfig{})
	case sopsdoc.FormatDotenv:
		store = dotenv.NewStore(&config.DotenvStoreConfig{})
	case sopsdoc.FormatBinary:
		store = sopsjson.NewBinaryStore(&config.JSONBinaryStoreConfig{})
	default:
		return nil, fmt.Errorf("sopstest: format %s not supported", format)
	}
	branches, err := store.LoadPlainFile(plain)
	if err != nil {
		return nil, fmt.Errorf("sopstest: load %s: %w", name, err)
	}
	var group sops.KeyGroup
	for _, r := range recipients {
		mk, err := sopsage.MasterKeyFromRecipient(r)
		if err != nil {
			return nil, fmt.Errorf("sopstest: recipient %s: %w", r, err)
		}
		group = append(group, keys.MasterKey(mk))
	}
	md := sops.Metadata{
		KeyGroups:        []sops.KeyGroup{group},
		EncryptedRegex:   opts.EncryptedRegex,
		UnencryptedRegex: opts.UnencryptedRegex,
		Version:          version.Version,
	}
	if md.EncryptedRegex == "" && md.UnencryptedRegex == "" {
		md.UnencryptedSuffix = sops.DefaultUnencryptedSuffix
	}
	tree := sops.Tree{Branches: branches, Metadata: md, FilePath: name}
	dataKey, errs := tree.GenerateDataKeyWithKeyServices([]keyservice.KeyServiceClient{keyservice.NewLocalClient()})
	if len(errs) > 0 {
		return nil, fmt.Errorf("sopstest: data key: %v", errs)
	}
	if err := common.EncryptTree(common.EncryptTreeOpts{Tree: &tree, Cipher: aes.NewCipher(), DataKey: dataKey}); err != nil {
		return nil, fmt.Errorf("sopstest: encrypt %s: %w", name, err)
	}
	out, err := store.EmitEncryptedFile(tree)
	if err != nil {
		return nil, fmt.Errorf("sopstest: emit %s: %w", name, err)
	}
	return out, nil
}

// Identity returns a fresh age identity.
func Identity(t testing.TB) *age.X25519Identity {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// MustEncrypt is Encrypt for tests.
func MustEncrypt(t testing.TB, name string, plain []byte, recipients []string, opts Options) []byte {
	t.Helper()
	out, err := Encrypt(name, plain, recipients, opts)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// WriteFile writes data at dir/rel, creating parent directories.
func WriteFile(t testing.TB, dir, rel string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
