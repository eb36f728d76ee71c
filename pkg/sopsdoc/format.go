// Package sopsdoc detects SOPS-encrypted documents and decrypts them entirely in memory with
// the sops library, using age identities loaded once into an in-memory key service. Nothing
// it does touches the disk or the process environment inside sops, and its errors name the
// file and the reason without ever carrying plaintext.
package sopsdoc

import (
	"path/filepath"
	"strings"
)

// Format is how a file is laid out, and so which sops store reads it. sops itself chooses the
// store by file extension; mirroring that rule means a file encrypted with a plain
// `sops -e FILE` decrypts here without extra flags.
type Format int

const (
	// FormatBinary is any file sops does not parse: it is stored as JSON {"data": ..., "sops": ...}.
	FormatBinary Format = iota
	FormatYAML
	FormatJSON
	FormatDotenv
	FormatINI
)

func (f Format) String() string {
	switch f {
	case FormatYAML:
		return "yaml"
	case FormatJSON:
		return "json"
	case FormatDotenv:
		return "dotenv"
	case FormatINI:
		return "ini"
	default:
		return "binary"
	}
}

// FormatForPath returns the format sops would pick for name.
func FormatForPath(name string) Format {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml":
		return FormatYAML
	case ".json":
		return FormatJSON
	case ".env":
		return FormatDotenv
	case ".ini":
		return FormatINI
	default:
		return FormatBinary
	}
}

// IsManifest reports whether name is a file the plugin renders in a plain directory.
func IsManifest(name string) bool {
	f := FormatForPath(name)
	return f == FormatYAML || f == FormatJSON
}
