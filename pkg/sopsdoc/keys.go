package sopsdoc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/armor"
	"github.com/getsops/sops/v3/keyservice"
)

// Environment variables read by WithKeysFromEnv; the same names the sops CLI uses, so a
// deployment that works with sops works here.
const (
	EnvAgeKeyFile = "SOPS_AGE_KEY_FILE"
	EnvAgeKey     = "SOPS_AGE_KEY"
)

// maxKeyFileSize bounds a key file: a few identities are a few hundred bytes.
const maxKeyFileSize = 1 << 20

// parseIdentities reads age identities from text, one per line (commas also separate, as
// SOPS_AGE_KEY allows). source names where they came from, for errors; errors never quote
// the text itself.
func parseIdentities(source, text string) ([]age.Identity, error) {
	text = strings.ReplaceAll(text, ",", "\n")
	ids, err := age.ParseIdentities(strings.NewReader(text))
	if err != nil {
		return nil, fmt.Errorf("age identities from %s: %w", source, err)
	}
	return ids, nil
}

func readKeyFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("age key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return "", fmt.Errorf("age key file %s: %w", path, err)
	}
	if len(b) > maxKeyFileSize {
		return "", fmt.Errorf("age key file %s: larger than %d bytes", path, maxKeyFileSize)
	}
	return string(b), nil
}

// publicKey returns the recipient string of an identity, or "" for kinds without one.
func publicKey(id age.Identity) string {
	switch k := id.(type) {
	case *age.X25519Identity:
		return k.Recipient().String()
	case *age.HybridIdentity:
		return k.Recipient().String()
	}
	return ""
}

// ageKeyService is a sops KeyServiceServer that opens age-encrypted data keys with
// identities parsed once at start-up. sops' own local server would re-read SOPS_AGE_KEY_FILE
// and friends from the process environment for every file; this one never looks anything up.
type ageKeyService struct {
	keyservice.UnimplementedKeyServiceServer
	identities []age.Identity
}

var errNotAge = errors.New("only age keys are supported by this key service")

func (s *ageKeyService) Decrypt(_ context.Context, req *keyservice.DecryptRequest) (*keyservice.DecryptResponse, error) {
	if req.GetKey().GetAgeKey() == nil {
		return nil, errNotAge
	}
	if len(s.identities) == 0 {
		return nil, errors.New("no age identities loaded")
	}
	ct, err := io.ReadAll(armor.NewReader(bytes.NewReader(req.GetCiphertext())))
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	// The payload is a 32-byte data key. DecryptReaderAt authenticates it up front and, unlike
	// age.Decrypt's streaming reader, does not allocate two 64 KiB chunk buffers per file,
	// which at a thousand files a sync was a quarter of the plugin's allocations.
	r, size, err := age.DecryptReaderAt(bytes.NewReader(ct), int64(len(ct)), s.identities...)
	if err != nil {
		return nil, fmt.Errorf("age: %w", err)
	}
	plain := make([]byte, size)
	if _, err := r.ReadAt(plain, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("age: %w", err)
	}
	return &keyservice.DecryptResponse{Plaintext: plain}, nil
}

// Encrypt is refused: the plugin only ever decrypts.
func (s *ageKeyService) Encrypt(context.Context, *keyservice.EncryptRequest) (*keyservice.EncryptResponse, error) {
	return nil, errors.New("the argocd-sops-plugin key service does not encrypt")
}
