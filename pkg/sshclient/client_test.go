package sshclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/nerv-platform/nerv/internal/sshtest"
)

func cfgFor(s *sshtest.Server) Config {
	return Config{Addr: s.Addr, User: s.User, IdentityFile: s.ClientKeyPath, KnownHostsFile: s.KnownHostsFile, ConnectTimeout: 5 * time.Second}
}

func mustDial(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestKnownHostRunsCommands(t *testing.T) {
	s := sshtest.Start(t)
	c := mustDial(t, cfgFor(s))
	if c.HostKeyAdded {
		t.Error("a known host key must not be re-added")
	}
	ctx := context.Background()

	res, err := c.Run(ctx, "echo out; echo err >&2")
	if err != nil {
		t.Fatal(err)
	}
	if string(res.Stdout) != "out\n" || string(res.Stderr) != "err\n" {
		t.Errorf("Run: stdout %q stderr %q", res.Stdout, res.Stderr)
	}

	res, err = c.Run(ctx, "echo partial; echo 'it broke' >&2; exit 3")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Status != 3 || ce.Stderr != "it broke" {
		t.Fatalf("failing command: got %v", err)
	}
	if string(res.Stdout) != "partial\n" {
		t.Errorf("stdout of a failing command: %q", res.Stdout)
	}
	if want := "exit status 3: it broke"; !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), s.User+"@"+s.Addr) {
		t.Errorf("error %q should name the target and contain %q", err, want)
	}

	var buf bytes.Buffer
	pw := NewPrefixWriter(&buf, "[remote] ")
	if err := c.Stream(ctx, "echo one; echo two >&2; printf three", pw); err != nil {
		t.Fatal(err)
	}
	pw.Flush()
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 3 || lines[2] != "[remote] three" {
		t.Errorf("Stream: got %q", buf.String())
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "[remote] ") {
			t.Errorf("Stream line without prefix: %q", l)
		}
	}

	file := filepath.Join(t.TempDir(), "it's a file.yaml")
	if err := os.WriteFile(file, []byte("apiVersion: v1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadFile(ctx, file)
	if err != nil || string(got) != "apiVersion: v1\n" {
		t.Errorf("ReadFile: %q, %v", got, err)
	}
	_, err = c.ReadFile(ctx, file+".missing")
	if err == nil || !strings.Contains(err.Error(), "No such file") || !strings.Contains(err.Error(), file+".missing") {
		t.Errorf("ReadFile of a missing file: %v", err)
	}
}

func TestCancelEndsTheCommand(t *testing.T) {
	s := sshtest.Start(t)
	c := mustDial(t, cfgFor(s))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Run(ctx, "sleep 30")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the context's error", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	// The connection stays usable for the next command.
	if out, err := c.Output(context.Background(), "echo still"); err != nil || string(out) != "still\n" {
		t.Fatalf("after cancel: %q %v", out, err)
	}
}

func TestUnknownHostKey(t *testing.T) {
	s := sshtest.Start(t)
	fp := s.Fingerprint()

	tests := []struct {
		name      string
		accept    string
		confirm   func(addr, keyType, fp string) (bool, error)
		wantAdded bool
		wantErr   string
	}{
		{name: "refused without a decision", wantErr: "is not in"},
		{name: "wrong fingerprint", accept: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", wantErr: "not the accepted fingerprint SHA256:AAAA"},
		{name: "declined at the prompt", confirm: func(string, string, string) (bool, error) { return false, nil }, wantErr: "is not in"},
		{name: "accepted by fingerprint", accept: fp, wantAdded: true},
		{name: "accepted by fingerprint without prefix", accept: strings.TrimPrefix(fp, "SHA256:"), wantAdded: true},
		{name: "accepted at the prompt", confirm: func(addr, kt, got string) (bool, error) {
			return addr == s.Addr && kt == ssh.KeyAlgoED25519 && got == fp, nil
		}, wantAdded: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			known := filepath.Join(t.TempDir(), "ssh", "known_hosts")
			cfg := cfgFor(s)
			cfg.KnownHostsFile, cfg.AcceptHostKey, cfg.ConfirmHostKey = known, tt.accept, tt.confirm
			c, err := Dial(context.Background(), cfg)
			if tt.wantErr != "" {
				var unknown *UnknownHostKeyError
				if !errors.As(err, &unknown) || unknown.Fingerprint != fp {
					t.Fatalf("got %v, want an UnknownHostKeyError with %s", err, fp)
				}
				if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), fp) {
					t.Errorf("message %q should contain %q and the fingerprint", err, tt.wantErr)
				}
				if _, err := os.Stat(known); !os.IsNotExist(err) {
					t.Errorf("known_hosts written although the key was refused: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.Close()
			if !c.HostKeyAdded {
				t.Error("HostKeyAdded not set")
			}
			data, err := os.ReadFile(known)
			if err != nil || string(data) != s.KnownHostsLine() {
				t.Fatalf("known_hosts: %q (%v), want %q", data, err, s.KnownHostsLine())
			}
			if fi, _ := os.Stat(known); fi.Mode().Perm() != 0o600 {
				t.Errorf("new known_hosts mode %v, want 0600", fi.Mode().Perm())
			}
			// Recorded: the next connection needs no decision.
			cfg.AcceptHostKey, cfg.ConfirmHostKey = "", nil
			c2 := mustDial(t, cfg)
			if c2.HostKeyAdded {
				t.Error("second connection re-added the key")
			}
		})
	}
}

func TestAppendKeepsExistingEntries(t *testing.T) {
	s := sshtest.Start(t)
	known := filepath.Join(t.TempDir(), "known_hosts")
	other := "other.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH8YwlPJcA+utjJJZBE3taGtUkfbGkcYh0p3JP8okMp2" // no trailing newline
	if err := os.WriteFile(known, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := cfgFor(s)
	cfg.KnownHostsFile, cfg.AcceptHostKey = known, s.Fingerprint()
	mustDial(t, cfg)
	data, _ := os.ReadFile(known)
	if string(data) != other+"\n"+s.KnownHostsLine() {
		t.Errorf("known_hosts after append:\n%s", data)
	}
	if fi, _ := os.Stat(known); fi.Mode().Perm() != 0o644 {
		t.Errorf("mode changed to %v", fi.Mode().Perm())
	}
}

func TestChangedHostKeyIsRefused(t *testing.T) {
	s := sshtest.Start(t)
	before, _ := os.ReadFile(s.KnownHostsFile)
	oldFP := s.Fingerprint()
	s.RotateHostKey(t)
	cfg := cfgFor(s)
	// Even a fingerprint accepted on the command line does not override a recorded key.
	cfg.AcceptHostKey = s.Fingerprint()
	cfg.ConfirmHostKey = func(string, string, string) (bool, error) {
		t.Error("a changed key must not be offered for confirmation")
		return true, nil
	}
	_, err := Dial(context.Background(), cfg)
	var changed *HostKeyChangedError
	if !errors.As(err, &changed) {
		t.Fatalf("got %v, want HostKeyChangedError", err)
	}
	msg := err.Error()
	for _, want := range []string{"REMOTE HOST IDENTIFICATION HAS CHANGED", s.KnownHostsFile + ":1", oldFP, s.Fingerprint(), "ssh-keygen -R"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	after, _ := os.ReadFile(s.KnownHostsFile)
	if !bytes.Equal(before, after) {
		t.Error("known_hosts was modified for a changed key")
	}
}

func TestWrongClientKey(t *testing.T) {
	s := sshtest.Start(t)
	cfg := cfgFor(s)
	cfg.IdentityFile = s.WrongClientKey(t)
	_, err := Dial(context.Background(), cfg)
	var ae *AuthError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want AuthError", err)
	}
	if !strings.Contains(err.Error(), cfg.IdentityFile) || !strings.Contains(err.Error(), "authorized_keys") {
		t.Errorf("message should name the key and the fix: %s", err)
	}
}

func TestBadKeyFiles(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	os.WriteFile(garbage, []byte("not a key"), 0o600)
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte("secret"))
	enc := filepath.Join(dir, "encrypted")
	os.WriteFile(enc, pemEncode(block), 0o600)
	t.Setenv("SSH_AUTH_SOCK", "")

	for _, tt := range []struct{ file, want string }{
		{filepath.Join(dir, "missing"), "reading SSH key"},
		{garbage, "parsing SSH key " + garbage},
		{enc, "passphrase-protected"},
	} {
		_, err := Dial(context.Background(), Config{Addr: sshtest.ClosedAddr(t), IdentityFile: tt.file, KnownHostsFile: filepath.Join(dir, "kh")})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want %q", tt.file, err, tt.want)
		}
	}
}

func TestUnreachable(t *testing.T) {
	for _, tt := range []struct {
		name string
		addr string
		want string
	}{
		{"closed port", sshtest.ClosedAddr(t), "connection refused"},
		{"silent server", sshtest.SilentAddr(t), "no SSH handshake"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 1 * time.Second
			start := time.Now()
			_, err := Dial(context.Background(), Config{Addr: tt.addr, IdentityFile: writeTestKey(t), KnownHostsFile: filepath.Join(t.TempDir(), "kh"), ConnectTimeout: timeout})
			elapsed := time.Since(start)
			var ce *ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("got %v, want ConnectError", err)
			}
			if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.addr) || !strings.Contains(err.Error(), "connect timeout 1s") {
				t.Errorf("message %q should name the address, the timeout and %q", err, tt.want)
			}
			// The connect timeout bounds the whole attempt (plus scheduling slack on a busy machine).
			if elapsed > timeout+3*time.Second {
				t.Errorf("gave up after %s, timeout %s", elapsed, timeout)
			}
		})
	}
}

func TestAgentFallback(t *testing.T) {
	s := sshtest.Start(t)
	keyring := agent.NewKeyring()
	pemBytes, _ := os.ReadFile(s.ClientKeyPath)
	raw, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := keyring.Add(agent.AddedKey{PrivateKey: raw}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _ = agent.ServeAgent(keyring, c) }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	cfg := cfgFor(s)
	cfg.IdentityFile = ""
	c := mustDial(t, cfg)
	if out, err := c.Output(context.Background(), "echo via-agent"); err != nil || string(out) != "via-agent\n" {
		t.Fatalf("%q %v", out, err)
	}
}

func TestHostKeyAlgorithmsFollowKnownHosts(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pub, _ := ssh.NewPublicKey(&priv.PublicKey)
	known := filepath.Join(t.TempDir(), "known_hosts")
	if err := AppendKnownHost(known, "10.0.0.9:2222", pub); err != nil {
		t.Fatal(err)
	}
	hk, err := newHostKeys(known, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hk.algorithms("10.0.0.9:2222"); len(got) != 1 || got[0] != ssh.KeyAlgoECDSA256 {
		t.Errorf("algorithms for a host with an ECDSA key: %v", got)
	}
	if got := hk.algorithms("10.0.0.10:22"); got != nil {
		t.Errorf("algorithms for an unknown host: %v, want library defaults", got)
	}
}

func writeTestKey(t *testing.T) string {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := ssh.MarshalPrivateKey(priv, "")
	p := filepath.Join(t.TempDir(), "id")
	os.WriteFile(p, pemEncode(block), 0o600)
	return p
}

func TestReplaceKnownHost(t *testing.T) {
	_, a, _ := ed25519.GenerateKey(rand.Reader)
	_, b, _ := ed25519.GenerateKey(rand.Reader)
	oldKey, _ := ssh.NewSignerFromKey(a)
	newKey, _ := ssh.NewSignerFromKey(b)
	old := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(oldKey.PublicKey())))
	hashed := knownhosts.HashHostname("10.0.0.7")
	content := strings.Join([]string{
		"# a comment stays",
		"10.0.0.7 " + old,
		"[10.0.0.7]:2222 " + old, // another port is another host
		"10.0.0.7,alias.example " + old,
		hashed + " " + old,
		"other.example " + old,
		"@cert-authority *.example " + old,
	}, "\n") + "\n"
	file := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(file, []byte(content), 0o640)
	if err := ReplaceKnownHost(file, "10.0.0.7:22", newKey.PublicKey()); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(file)
	want := strings.Join([]string{
		"# a comment stays",
		"[10.0.0.7]:2222 " + old,
		"alias.example " + old,
		"other.example " + old,
		"@cert-authority *.example " + old,
		knownhosts.Line([]string{"10.0.0.7"}, newKey.PublicKey()),
	}, "\n") + "\n"
	if string(got) != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	// The result verifies the new key and no longer the old one.
	cb, err := knownhosts.New(file)
	if err != nil {
		t.Fatal(err)
	}
	addr := &net.TCPAddr{IP: net.ParseIP("10.0.0.7"), Port: 22}
	if err := cb("10.0.0.7:22", addr, newKey.PublicKey()); err != nil {
		t.Errorf("new key: %v", err)
	}
	if err := cb("10.0.0.7:22", addr, oldKey.PublicKey()); err == nil {
		t.Error("old key still accepted")
	}
}
