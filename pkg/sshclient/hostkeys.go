package sshclient

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/nerv-platform/nerv/pkg/atomicfile"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// UnknownHostKeyError is returned when known_hosts has no key for the host and the key was
// neither accepted by fingerprint nor confirmed. The caller shows Fingerprint to the user,
// who compares it with the machine's own (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub
// on its console) before accepting it.
type UnknownHostKeyError struct {
	Addr           string
	KeyType        string
	Fingerprint    string
	KnownHostsFile string
	// Offered is set when an --accept-host-key style fingerprint was given and did not match.
	Offered string
}

func (e *UnknownHostKeyError) Error() string {
	if e.Offered != "" {
		return fmt.Sprintf("host key of %s is %s %s, not the accepted fingerprint %s: refusing to connect (check the machine's console for its real key)",
			e.Addr, e.KeyType, e.Fingerprint, e.Offered)
	}
	return fmt.Sprintf("host key of %s is not in %s: it offers %s %s; verify it on the machine (ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub) before accepting it",
		e.Addr, e.KnownHostsFile, e.KeyType, e.Fingerprint, keyFileKind(e.KeyType))
}

// HostKeyChangedError is returned when known_hosts holds a different key for the host: the
// connection is refused whatever the caller accepts, as OpenSSH does.
type HostKeyChangedError struct {
	Addr        string
	KeyType     string
	Fingerprint string
	// Known are the file:line entries that hold the host's recorded keys.
	Known []KnownKey
}

// KnownKey is one known_hosts entry for a host.
type KnownKey struct {
	File        string
	Line        int
	KeyType     string
	Fingerprint string
}

func (e *HostKeyChangedError) Error() string {
	var where []string
	for _, k := range e.Known {
		where = append(where, fmt.Sprintf("%s:%d (%s %s)", k.File, k.Line, k.KeyType, k.Fingerprint))
	}
	file := ""
	if len(e.Known) > 0 {
		file = e.Known[0].File
	}
	return fmt.Sprintf("REMOTE HOST IDENTIFICATION HAS CHANGED for %s: it now offers %s %s, but known_hosts records %s. "+
		"Someone could be intercepting the connection, or the machine was reinstalled. Refusing to connect; "+
		"if the change is expected, remove the old entry with: ssh-keygen -R %s -f %s",
		e.Addr, e.KeyType, e.Fingerprint, strings.Join(where, ", "), shellQuote(knownhosts.Normalize(e.Addr)), shellQuote(file))
}

// keyFileKind maps a key type to the host key file name sshd uses (ssh_host_<kind>_key).
func keyFileKind(keyType string) string {
	switch keyType {
	case ssh.KeyAlgoED25519:
		return "ed25519"
	case ssh.KeyAlgoRSA:
		return "rsa"
	}
	if strings.HasPrefix(keyType, "ecdsa-") {
		return "ecdsa"
	}
	return "*"
}

// hostKeys verifies server keys against one known_hosts file.
type hostKeys struct {
	file     string
	db       ssh.HostKeyCallback // nil when the file does not exist yet
	accept   string              // fingerprint accepted for an unknown host
	confirm  func(addr, keyType, fingerprint string) (bool, error)
	accepted bool // set when the key was unknown and has been added to file
}

func newHostKeys(file, accept string, confirm func(addr, keyType, fingerprint string) (bool, error)) (*hostKeys, error) {
	h := &hostKeys{file: file, accept: normalizeFingerprint(accept), confirm: confirm}
	if _, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return h, nil
	}
	db, err := knownhosts.New(file)
	if err != nil {
		return nil, fmt.Errorf("reading known_hosts %s: %w", file, err)
	}
	h.db = db
	return h, nil
}

func normalizeFingerprint(fp string) string {
	fp = strings.TrimSpace(fp)
	if fp != "" && !strings.HasPrefix(fp, "SHA256:") {
		fp = "SHA256:" + fp
	}
	return fp
}

// algorithms lists the host key algorithms to negotiate for addr: those of the keys
// known_hosts already holds, so a host with an RSA key on record is not asked for (and then
// "changed" to) its ed25519 key. nil means the library's defaults.
func (h *hostKeys) algorithms(addr string) []string {
	if h.db == nil {
		return nil
	}
	// A probe key that cannot be on record makes knownhosts list the recorded ones.
	var ke *knownhosts.KeyError
	if err := h.db(addr, tcpAddr(addr), probeKey{}); !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a ...string) {
		for _, x := range a {
			if !seen[x] {
				seen[x] = true
				algos = append(algos, x)
			}
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// check is the ssh.HostKeyCallback.
func (h *hostKeys) check(hostname string, remote net.Addr, key ssh.PublicKey) error {
	fp := ssh.FingerprintSHA256(key)
	if h.db != nil {
		err := h.db(hostname, remote, key)
		if err == nil {
			return nil
		}
		var ke *knownhosts.KeyError
		if !errors.As(err, &ke) {
			return fmt.Errorf("checking host key of %s against %s: %w", hostname, h.file, err)
		}
		if len(ke.Want) > 0 {
			changed := &HostKeyChangedError{Addr: hostname, KeyType: key.Type(), Fingerprint: fp}
			for _, w := range ke.Want {
				changed.Known = append(changed.Known, KnownKey{File: w.Filename, Line: w.Line, KeyType: w.Key.Type(), Fingerprint: ssh.FingerprintSHA256(w.Key)})
			}
			return changed
		}
	}
	unknown := &UnknownHostKeyError{Addr: hostname, KeyType: key.Type(), Fingerprint: fp, KnownHostsFile: h.file}
	switch {
	case h.accept != "":
		if h.accept != fp {
			unknown.Offered = h.accept
			return unknown
		}
	case h.confirm != nil:
		ok, err := h.confirm(hostname, key.Type(), fp)
		if err != nil {
			return fmt.Errorf("confirming host key of %s: %w", hostname, err)
		}
		if !ok {
			return unknown
		}
	default:
		return unknown
	}
	if err := AppendKnownHost(h.file, hostname, key); err != nil {
		return err
	}
	h.accepted = true
	return nil
}

// AppendKnownHost adds a line for addr's key to the known_hosts file, atomically (the new
// content is written to a temp file and renamed over the old one), creating the file (0600)
// and its directory (0700) if needed. An existing file keeps its mode.
func AppendKnownHost(file, addr string, key ssh.PublicKey) error {
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key) + "\n"
	old, err := os.ReadFile(file)
	mode := fs.FileMode(0o600)
	switch {
	case err == nil:
		if fi, err := os.Stat(file); err == nil {
			mode = fi.Mode().Perm()
		}
		if len(old) > 0 && old[len(old)-1] != '\n' {
			old = append(old, '\n')
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
			return fmt.Errorf("adding host key to %s: %w", file, err)
		}
	default:
		return fmt.Errorf("adding host key to %s: %w", file, err)
	}
	if err := writeFileAtomic(file, append(old, line...), mode); err != nil {
		return fmt.Errorf("adding host key to %s: %w", file, err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte, mode fs.FileMode) (err error) {
	return atomicfile.WriteFile(path, data, mode)
}

// tcpAddr turns "host:port" into a net.Addr for knownhosts, which matches on it for hosts
// recorded by IP.
func tcpAddr(addr string) net.Addr {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return &net.TCPAddr{}
	}
	a := &net.TCPAddr{IP: net.ParseIP(host)}
	fmt.Sscanf(port, "%d", &a.Port)
	return a
}

// probeKey is a public key no known_hosts line can hold.
type probeKey struct{}

func (probeKey) Type() string                        { return "nerv-probe" }
func (probeKey) Marshal() []byte                     { return []byte("nerv-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@=+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// ReplaceKnownHost records key as addr's only host key in the known_hosts file: lines that
// name addr alone (plain or hashed) are dropped, lines naming addr among other hosts lose
// that name, and a new line is appended; the file is rewritten atomically. It is for a key
// the caller has verified by other means, such as the host key it installed on the machine
// itself; keys seen on the network go through Dial's checks instead.
func ReplaceKnownHost(file, addr string, key ssh.PublicKey) error {
	host := knownhosts.Normalize(addr)
	old, err := os.ReadFile(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("recording host key in %s: %w", file, err)
	}
	mode := fs.FileMode(0o600)
	if fi, err := os.Stat(file); err == nil {
		mode = fi.Mode().Perm()
	}
	var kept []string
	for _, line := range strings.Split(string(old), "\n") {
		if line == "" {
			continue
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") || strings.HasPrefix(trimmed, "@") {
			kept = append(kept, line)
			continue
		}
		hosts, rest, _ := strings.Cut(trimmed, " ")
		var others []string
		for _, h := range strings.Split(hosts, ",") {
			if !hostEntryMatches(h, host) {
				others = append(others, h)
			}
		}
		switch {
		case len(others) == 0:
			// Only this host: drop the line.
		case len(others) == len(strings.Split(hosts, ",")):
			kept = append(kept, line)
		default:
			kept = append(kept, strings.Join(others, ",")+" "+rest)
		}
	}
	kept = append(kept, knownhosts.Line([]string{host}, key))
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("recording host key in %s: %w", file, err)
	}
	if err := writeFileAtomic(file, []byte(strings.Join(kept, "\n")+"\n"), mode); err != nil {
		return fmt.Errorf("recording host key in %s: %w", file, err)
	}
	return nil
}

// hostEntryMatches reports whether one host field of a known_hosts line is exactly host
// (normalised), including OpenSSH's hashed form |1|salt|hash.
func hostEntryMatches(entry, host string) bool {
	if strings.HasPrefix(entry, "|1|") {
		parts := strings.Split(entry[3:], "|")
		if len(parts) != 2 {
			return false
		}
		salt, err := base64.StdEncoding.DecodeString(parts[0])
		if err != nil {
			return false
		}
		mac := hmac.New(sha1.New, salt)
		mac.Write([]byte(host))
		return base64.StdEncoding.EncodeToString(mac.Sum(nil)) == parts[1]
	}
	return entry == host
}
