package sopsdoc

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors; every error returned by a Decryptor wraps one of them and names the file.
var (
	// ErrNoMatchingKey: none of the held age identities can open the file's data key.
	ErrNoMatchingKey = errors.New("no key fits")
	// ErrMACMismatch: the file's MAC does not match its contents: it changed after encryption.
	ErrMACMismatch = errors.New("MAC mismatch")
	// ErrTampered: an encrypted value fails authentication or is malformed.
	ErrTampered = errors.New("encrypted value cannot be authenticated")
	// ErrTooLarge: the file is over the per-file size limit.
	ErrTooLarge = errors.New("file too large")
	// ErrInvalid: the file cannot be parsed (invalid YAML/JSON, broken sops metadata).
	ErrInvalid = errors.New("invalid document")
)

// FileError is a failure tied to one file. Reason is written for the person who has to act;
// it never contains plaintext or key material.
type FileError struct {
	File   string
	Reason string
	Err    error // one of the sentinels above
}

func (e *FileError) Error() string {
	if e.Reason == "" {
		return fmt.Sprintf("%s: %v", e.File, e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", e.File, e.Err, e.Reason)
}

func (e *FileError) Unwrap() error { return e.Err }

// NoKeyError says exactly why a file cannot be opened: who it was encrypted for, and what
// this process holds. It replaces sops' "0 successful groups required" message.
type NoKeyError struct {
	File string
	// Recipients are the age public keys the file's data key was encrypted for.
	Recipients []string
	// OtherKeys are non-age master keys in the file (PGP fingerprints, KMS ARNs, ...), which
	// this plugin does not use.
	OtherKeys []string
	// Held are the public keys of the age identities the plugin loaded.
	Held []string
}

func (e *NoKeyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %v: ", e.File, ErrNoMatchingKey)
	if len(e.Recipients) > 0 {
		fmt.Fprintf(&b, "encrypted for age recipients [%s]", strings.Join(e.Recipients, ", "))
	} else {
		b.WriteString("encrypted for no age recipient")
	}
	if len(e.OtherKeys) > 0 {
		fmt.Fprintf(&b, " and non-age keys [%s] (not supported by this plugin)", strings.Join(e.OtherKeys, ", "))
	}
	if len(e.Held) > 0 {
		fmt.Fprintf(&b, "; this plugin holds age keys [%s]", strings.Join(e.Held, ", "))
		b.WriteString("; add the private key of one of the file's recipients to the key Secret, or re-encrypt the file for a held key (sops updatekeys)")
	} else {
		b.WriteString("; this plugin holds no age key: set SOPS_AGE_KEY_FILE or SOPS_AGE_KEY (see the key Secret in the install docs)")
	}
	return b.String()
}

func (e *NoKeyError) Unwrap() error { return ErrNoMatchingKey }
