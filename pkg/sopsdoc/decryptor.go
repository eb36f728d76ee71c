package sopsdoc

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sort"

	"filippo.io/age"
	"github.com/getsops/sops/v3"
	"github.com/getsops/sops/v3/aes"
	sopsage "github.com/getsops/sops/v3/age"
	"github.com/getsops/sops/v3/cmd/sops/codes"
	"github.com/getsops/sops/v3/cmd/sops/common"
	"github.com/getsops/sops/v3/config"
	"github.com/getsops/sops/v3/keyservice"
	"github.com/getsops/sops/v3/stores/dotenv"
	"github.com/getsops/sops/v3/stores/ini"
	sopsjson "github.com/getsops/sops/v3/stores/json"
	sopsyaml "github.com/getsops/sops/v3/stores/yaml"
	"go.yaml.in/yaml/v3"
)

// DefaultMaxFileSize is the per-file limit: far above any real manifest, low enough that a
// stray binary in the repo cannot make the repo-server sidecar balloon.
const DefaultMaxFileSize int64 = 5 << 20

// Decryptor decrypts SOPS documents in memory. It is safe for concurrent use.
type Decryptor struct {
	maxFileSize int64
	identities  []age.Identity
	keySources  []string // where identities came from, for the "holds no key" hint
	keyErr      error    // deferred option error, returned by New
	getenv      func(string) string
	svcs        []keyservice.KeyServiceClient
	held        []string
}

// Option configures a Decryptor.
type Option func(*Decryptor)

// WithMaxFileSize sets the per-file size limit in bytes (DefaultMaxFileSize when unset or <= 0).
func WithMaxFileSize(n int64) Option {
	return func(d *Decryptor) {
		if n > 0 {
			d.maxFileSize = n
		}
	}
}

// WithAgeKeyFile loads age identities from a key file (the format age-keygen writes).
func WithAgeKeyFile(path string) Option {
	return func(d *Decryptor) {
		if path == "" {
			return
		}
		text, err := readKeyFile(path)
		if err == nil {
			err = d.addIdentities(path, text)
		}
		d.keyErr = errors.Join(d.keyErr, err)
	}
}

// WithAgeKeys loads age identities from text holding one or more AGE-SECRET-KEY-... lines.
// source names the origin in errors (e.g. "SOPS_AGE_KEY").
func WithAgeKeys(source, text string) Option {
	return func(d *Decryptor) {
		if text == "" {
			return
		}
		d.keyErr = errors.Join(d.keyErr, d.addIdentities(source, text))
	}
}

// WithIdentities adds already parsed age identities.
func WithIdentities(ids ...age.Identity) Option {
	return func(d *Decryptor) {
		d.identities = append(d.identities, ids...)
		d.keySources = append(d.keySources, "identities")
	}
}

// WithKeysFromEnv loads identities named by SOPS_AGE_KEY_FILE and SOPS_AGE_KEY, looked up
// through getenv (os.Getenv in the plugin), once, at construction.
func WithKeysFromEnv(getenv func(string) string) Option {
	return func(d *Decryptor) {
		WithAgeKeyFile(getenv(EnvAgeKeyFile))(d)
		WithAgeKeys(EnvAgeKey, getenv(EnvAgeKey))(d)
	}
}

func (d *Decryptor) addIdentities(source, text string) error {
	ids, err := parseIdentities(source, text)
	if err != nil {
		return err
	}
	d.identities = append(d.identities, ids...)
	d.keySources = append(d.keySources, source)
	return nil
}

// New returns a Decryptor holding the identities the options load. It fails only when a
// configured key source cannot be read or parsed; holding no key at all is allowed (plain
// files still pass through, and decrypting says what is missing).
func New(opts ...Option) (*Decryptor, error) {
	d := &Decryptor{maxFileSize: DefaultMaxFileSize}
	for _, o := range opts {
		o(d)
	}
	if d.keyErr != nil {
		return nil, d.keyErr
	}
	seen := map[string]bool{}
	for _, id := range d.identities {
		if pk := publicKey(id); pk != "" && !seen[pk] {
			seen[pk] = true
			d.held = append(d.held, pk)
		}
	}
	sort.Strings(d.held)
	d.svcs = []keyservice.KeyServiceClient{
		keyservice.NewCustomLocalClient(&ageKeyService{identities: d.identities}),
	}
	return d, nil
}

// PublicKeys returns the age public keys of the loaded identities, sorted.
func (d *Decryptor) PublicKeys() []string { return slices.Clone(d.held) }

// MaxFileSize returns the per-file size limit in bytes.
func (d *Decryptor) MaxFileSize() int64 { return d.maxFileSize }

// Decrypt returns the plaintext of the file named name, in the file's own format (a YAML file
// stays YAML, a dotenv file dotenv, ...), and whether anything in it was encrypted. Files
// without SOPS documents come back unchanged after their syntax is checked. Errors are
// *FileError or *NoKeyError and never contain plaintext.
func (d *Decryptor) Decrypt(name string, data []byte) (plain []byte, encrypted bool, err error) {
	if int64(len(data)) > d.maxFileSize {
		return nil, false, &FileError{File: name, Err: ErrTooLarge,
			Reason: fmt.Sprintf("%d bytes, limit %d (raise --max-file-size / ARGOCD_ENV_SOPS_MAX_FILE_SIZE)", len(data), d.maxFileSize)}
	}
	switch f := FormatForPath(name); f {
	case FormatYAML:
		return d.decryptYAML(name, data)
	case FormatDotenv, FormatINI:
		if !flatSopsMarked(f, data) {
			return data, false, nil
		}
		out, err := d.decryptTree(name, f, data)
		return out, err == nil, err
	default: // JSON, and sops' binary store, which is JSON too
		mac, err := jsonSopsMAC(data)
		if err != nil {
			if f == FormatBinary {
				return data, false, nil // an ordinary non-JSON file
			}
			return nil, false, &FileError{File: name, Err: ErrInvalid, Reason: "JSON " + err.Error()}
		}
		if mac == "" {
			return data, false, nil
		}
		out, err := d.decryptTree(name, f, data)
		return out, err == nil, err
	}
}

func (d *Decryptor) decryptYAML(name string, data []byte) ([]byte, bool, error) {
	docs, err := splitYAML(data)
	if err != nil {
		return nil, false, &FileError{File: name, Err: ErrInvalid, Reason: "YAML " + trimYAMLPrefix(err.Error())}
	}
	groups := groupByMAC(docs)
	switch {
	case len(groups) == 0, len(groups) == 1 && groups[0][0].mac == "":
		return data, false, nil
	case len(groups) == 1:
		// The common case, one file as sops wrote it: decrypt the bytes as they are.
		out, err := d.decryptTree(name, FormatYAML, data)
		return out, err == nil, err
	}
	// Documents from several sops runs (or mixed with plain ones): each run separately.
	var out bytes.Buffer
	for _, g := range groups {
		raw, err := encodeYAML(g)
		if err != nil {
			return nil, false, &FileError{File: name, Err: ErrInvalid, Reason: "YAML: " + err.Error()}
		}
		if g[0].mac != "" {
			if raw, err = d.decryptTree(name, FormatYAML, raw); err != nil {
				return nil, false, err
			}
		}
		if out.Len() > 0 {
			out.WriteString("---\n")
		}
		out.Write(raw)
	}
	return out.Bytes(), true, nil
}

// groupByMAC splits docs into runs of consecutive documents with the same MAC; plain
// documents each form their own run.
func groupByMAC(docs []yamlDoc) [][]yamlDoc {
	var groups [][]yamlDoc
	for _, doc := range docs {
		n := len(groups)
		if n > 0 && doc.mac != "" && groups[n-1][0].mac == doc.mac {
			groups[n-1] = append(groups[n-1], doc)
			continue
		}
		groups = append(groups, []yamlDoc{doc})
	}
	// One run of plain documents is still "all plain".
	if len(groups) > 1 {
		allPlain := true
		for _, g := range groups {
			allPlain = allPlain && g[0].mac == ""
		}
		if allPlain {
			return [][]yamlDoc{docs}
		}
	}
	return groups
}

func encodeYAML(docs []yamlDoc) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d.node); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func trimYAMLPrefix(s string) string {
	if len(s) > 6 && s[:6] == "yaml: " {
		return s[6:]
	}
	return s
}

func storeFor(f Format) sops.Store {
	switch f {
	case FormatYAML:
		return sopsyaml.NewStore(&config.YAMLStoreConfig{Indent: 2})
	case FormatJSON:
		return sopsjson.NewStore(&config.JSONStoreConfig{})
	case FormatDotenv:
		return dotenv.NewStore(&config.DotenvStoreConfig{})
	case FormatINI:
		return ini.NewStore(&config.INIStoreConfig{})
	default:
		return sopsjson.NewBinaryStore(&config.JSONBinaryStoreConfig{})
	}
}

// decryptTree decrypts one sops tree (one file, or one run of documents of a YAML stream).
func (d *Decryptor) decryptTree(name string, f Format, data []byte) ([]byte, error) {
	store := storeFor(f)
	tree, err := store.LoadEncryptedFile(data)
	if err != nil {
		// Parse and metadata errors from the stores describe structure, not values.
		return nil, &FileError{File: name, Err: ErrInvalid, Reason: "sops metadata: " + err.Error()}
	}
	// Recover the data key first so a key mismatch is reported with recipients and held keys
	// instead of sops' per-group summary; DecryptTree then reuses the recovered key.
	if _, err := tree.Metadata.GetDataKeyWithKeyServices(d.svcs, nil); err != nil {
		return nil, d.keyError(name, &tree)
	}
	_, err = common.DecryptTree(common.DecryptTreeOpts{
		Tree:        &tree,
		KeyServices: d.svcs,
		Cipher:      aes.NewCipher(),
	})
	if err != nil {
		return nil, treeError(name, err)
	}
	var out []byte
	if f == FormatYAML {
		out, err = emitYAML(tree.Branches)
	} else {
		out, err = store.EmitPlainFile(tree.Branches)
	}
	if err != nil {
		return nil, &FileError{File: name, Err: ErrInvalid, Reason: "emitting plaintext failed"}
	}
	return out, nil
}

// keyError explains a data key that could not be opened.
func (d *Decryptor) keyError(name string, tree *sops.Tree) error {
	e := &NoKeyError{File: name, Held: d.PublicKeys()}
	for _, group := range tree.Metadata.KeyGroups {
		for _, k := range group {
			if ak, ok := k.(*sopsage.MasterKey); ok {
				e.Recipients = append(e.Recipients, ak.Recipient)
			} else {
				e.OtherKeys = append(e.OtherKeys, k.TypeToIdentifier()+":"+k.ToString())
			}
		}
	}
	for _, r := range e.Recipients {
		if slices.Contains(e.Held, r) {
			// We hold the right key, so the encrypted data key itself is damaged.
			return &FileError{File: name, Err: ErrTampered,
				Reason: fmt.Sprintf("the data key encrypted for %s does not open with the matching identity: the sops metadata was modified", r)}
		}
	}
	return e
}

// treeError maps sops' decrypt errors (cli exit errors carrying codes) to ours. sops' own
// MAC message quotes the computed MAC, a digest of the plaintext; it is dropped.
func treeError(name string, err error) error {
	var coded interface{ ExitCode() int }
	code := 0
	if errors.As(err, &coded) {
		code = coded.ExitCode()
	}
	switch code {
	case codes.MacMismatch:
		return &FileError{File: name, Err: ErrMACMismatch,
			Reason: "the file was changed after it was encrypted (edited without sops, or a bad merge); restore it or re-encrypt it with sops"}
	case codes.ErrorDecryptingTree:
		return &FileError{File: name, Err: ErrTampered,
			Reason: "an ENC[...] value was modified or truncated; restore it or re-encrypt the file with sops"}
	}
	return &FileError{File: name, Err: ErrInvalid, Reason: "sops could not decrypt the file"}
}
