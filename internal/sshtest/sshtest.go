// Package sshtest runs the machine's real OpenSSH server (Debian's /usr/sbin/sshd) on a
// loopback port for tests, so SSH code is exercised against the same daemon it meets on a
// NixOS node rather than against an in-process imitation.
//
// Each Server is private to one test: its own host key (ed25519), its own authorized client
// key, its own sshd_config, pid file and log, all in t.TempDir(). sshd runs in the
// foreground (-D -e) as the current user and is stopped by t.Cleanup; its log is printed when
// the test fails.
//
//	srv := sshtest.Start(t)
//	srv.AddCommand(t, "nixos-generate-config", "#!/bin/sh\necho '{ }'\n")
//	// dial srv.Addr as srv.User with srv.ClientKeyPath, verifying against srv.KnownHostsFile
//
// Sessions: sshd's SetEnv gives every session PATH=<BinDir>:<system path>, so an executable
// written with AddCommand shadows the real one, and HOME=<Dir>/home, so the login shell
// (bash sources ~/.bashrc for ssh commands) reads an empty home instead of the developer's
// rc files, which could reorder PATH or take seconds per command. The working directory is
// still the account's real home (sshd changes to it before the shell starts).
//
// Requirements: /usr/sbin/sshd (override with NERV_SSHD), and when running as root the
// privilege-separation directory /run/sshd (created if missing) and the "sshd" user.
package sshtest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHDEnv overrides the sshd binary (an absolute path: sshd refuses to re-exec otherwise).
const SSHDEnv = "NERV_SSHD"

// DefaultSSHD is Debian's openssh-server binary.
const DefaultSSHD = "/usr/sbin/sshd"

// systemPath follows the bin dir in sessions; it is OpenSSH's compiled-in default user path
// plus the sbin directories root expects.
const systemPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Server is a running sshd. Fields are read-only after Start.
type Server struct {
	// Addr is "127.0.0.1:<port>", what a client dials.
	Addr string
	// Host and Port split Addr.
	Host string
	Port int
	// User is the account sshd runs as and the only one allowed to log in.
	User string
	// Dir holds the config, keys, pid file and BinDir.
	Dir string
	// BinDir is first on the PATH of every session; see AddCommand.
	BinDir string
	// Home is $HOME in sessions (empty at start).
	Home string
	// ClientKeyPath is an OpenSSH-format ed25519 private key (0600) that sshd accepts.
	ClientKeyPath string
	// ClientSigner is the same key, for in-process clients.
	ClientSigner ssh.Signer
	// KnownHostsFile is a known_hosts file holding the current host key for Addr. It is
	// written at Start and not updated by RotateHostKey, so after a rotation it holds the
	// old key, which is what a "host key changed" test needs.
	KnownHostsFile string

	// HostKeyPath is sshd's host private key. A test may replace it (as a reinstalled
	// machine's new key) and call Reload, or have a child process send sshd SIGHUP (Pid).
	HostKeyPath string

	sshd       string
	configPath string
	mu         sync.Mutex
	hostKey    ssh.PublicKey
	proc       *exec.Cmd
	done       chan struct{}
	log        *syncBuffer
}

// Option adjusts the server before it starts.
type Option func(*config)

type config struct {
	extraConfig []string
}

// WithConfig appends sshd_config lines (e.g. "MaxSessions 1").
func WithConfig(lines ...string) Option {
	return func(c *config) { c.extraConfig = append(c.extraConfig, lines...) }
}

// Start launches sshd and waits until it answers with an SSH banner. It fails the test (it
// does not skip) when sshd is missing: these tests exist to run against the real daemon.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	sshd := os.Getenv(SSHDEnv)
	if sshd == "" {
		sshd = DefaultSSHD
	}
	if !filepath.IsAbs(sshd) {
		t.Fatalf("sshtest: %s=%q: sshd must be started by absolute path", SSHDEnv, sshd)
	}
	if _, err := os.Stat(sshd); err != nil {
		t.Fatalf("sshtest: %v (install openssh-server, or point %s at an sshd binary)", err, SSHDEnv)
	}
	u, err := user.Current()
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if os.Geteuid() == 0 {
		// sshd chroots its pre-auth child here and refuses to start without it.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("sshtest: creating sshd's privilege-separation dir: %v", err)
		}
	}

	dir := t.TempDir()
	s := &Server{
		User:           u.Username,
		Dir:            dir,
		BinDir:         filepath.Join(dir, "bin"),
		Home:           filepath.Join(dir, "home"),
		ClientKeyPath:  filepath.Join(dir, "client_ed25519"),
		KnownHostsFile: filepath.Join(dir, "known_hosts"),
		sshd:           sshd,
		configPath:     filepath.Join(dir, "sshd_config"),
		HostKeyPath:    filepath.Join(dir, "host_ed25519"),
		log:            &syncBuffer{},
	}
	for _, d := range []string{s.BinDir, s.Home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
	}
	clientPub, signer, err := writeKey(s.ClientKeyPath)
	if err != nil {
		t.Fatalf("sshtest: client key: %v", err)
	}
	s.ClientSigner = signer
	authorized := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientPub), 0o600); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	if s.hostKey, _, err = writeKey(s.HostKeyPath); err != nil {
		t.Fatalf("sshtest: host key: %v", err)
	}

	// The port is picked by the kernel and released just before sshd binds it; another
	// process could grab it in between, so a bind failure is retried on a fresh port.
	var startErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		s.Host, s.Port = "127.0.0.1", port
		s.Addr = net.JoinHostPort(s.Host, strconv.Itoa(port))
		if err := s.writeConfig(authorized, cfg.extraConfig); err != nil {
			t.Fatalf("sshtest: %v", err)
		}
		if startErr = s.start(); startErr == nil {
			break
		}
	}
	if startErr != nil {
		t.Fatalf("sshtest: %v\nsshd log:\n%s", startErr, s.Log())
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sshd log (%s):\n%s", s.Addr, s.Log())
		}
	})
	if err := os.WriteFile(s.KnownHostsFile, []byte(s.KnownHostsLine()), 0o600); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return s
}

func (s *Server) writeConfig(authorized string, extra []string) error {
	lines := []string{
		"# written by internal/sshtest for one test",
		"Port " + strconv.Itoa(s.Port),
		"ListenAddress " + s.Host,
		"HostKey " + s.HostKeyPath,
		"PidFile " + filepath.Join(s.Dir, "sshd.pid"),
		"AuthorizedKeysFile " + authorized,
		// PAM needs a system service config and would consult the real accounts; keys only.
		"UsePAM no",
		// The temp dir lives under the world-writable /tmp, which StrictModes rejects.
		"StrictModes no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowUsers " + s.User,
		"SetEnv PATH=" + s.BinDir + ":" + systemPath + " HOME=" + s.Home,
		"PrintMotd no",
		"PrintLastLog no",
		"MaxStartups 64",
		"LogLevel VERBOSE",
		"Subsystem sftp internal-sftp",
	}
	lines = append(lines, extra...)
	return os.WriteFile(s.configPath, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
}

// start runs sshd on the configured port and waits for its banner.
func (s *Server) start() error {
	cmd := exec.Command(s.sshd, "-D", "-e", "-f", s.configPath)
	cmd.Stdout = s.log
	cmd.Stderr = s.log
	// Its own process group, so a Ctrl-C aimed at the test's group in a test does not kill it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Wait must not hang on a session child that still holds the log pipe.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", s.sshd, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("sshd exited at start: %v", cmd.ProcessState)
		default:
		}
		if banner(s.Addr) {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			return fmt.Errorf("sshd did not answer on %s within 10s", s.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.mu.Lock()
	s.proc, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// banner reports whether an SSH server answers on addr.
func banner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4)
	_, err = io.ReadFull(c, buf)
	return err == nil && string(buf) == "SSH-"
}

// Stop terminates sshd (idempotent). Sessions already open are cut.
func (s *Server) Stop() {
	s.mu.Lock()
	proc, done := s.proc, s.done
	s.proc = nil
	s.mu.Unlock()
	if proc == nil {
		return
	}
	// sshd's per-connection children and their sessions call setsid, so they are in process
	// groups of their own: end them by walking the process tree, then the listener.
	for _, pid := range descendants(proc.Process.Pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = syscall.Kill(-proc.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-proc.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// descendants lists every process below pid, read from /proc (Linux only, as sshd's
// privilege separation setup here is).
func descendants(pid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command name, which is in parentheses and may contain spaces.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// RotateHostKey gives the server a new host key, as a reinstalled machine would have, and
// restarts sshd on the same address. KnownHostsFile keeps the old key. It returns the new key.
func (s *Server) RotateHostKey(t testing.TB) ssh.PublicKey {
	t.Helper()
	s.Stop()
	key, _, err := writeKey(s.HostKeyPath)
	if err != nil {
		t.Fatalf("sshtest: rotating host key: %v", err)
	}
	s.mu.Lock()
	s.hostKey = key
	s.mu.Unlock()
	// The port was ours a moment ago; sshd sets SO_REUSEADDR, so rebinding it is immediate.
	if err := s.start(); err != nil {
		t.Fatalf("sshtest: restarting sshd after key rotation: %v\n%s", err, s.Log())
	}
	return key
}

// Pid is sshd's process id: SIGHUP makes it re-execute itself and re-read HostKeyPath
// (its listener is briefly closed while it does).
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return 0
	}
	return s.proc.Process.Pid
}

// Reload re-reads the host key from HostKeyPath after something replaced the file, sends
// sshd SIGHUP (unless signal is false: the caller's child already did) and waits until it
// answers again.
func (s *Server) Reload(t testing.TB, signal bool) {
	t.Helper()
	data, err := os.ReadFile(s.HostKeyPath)
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatalf("sshtest: host key %s: %v", s.HostKeyPath, err)
	}
	s.mu.Lock()
	s.hostKey = signer.PublicKey()
	s.mu.Unlock()
	if signal {
		if err := syscall.Kill(s.Pid(), syscall.SIGHUP); err != nil {
			t.Fatalf("sshtest: SIGHUP: %v", err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !banner(s.Addr) {
		if time.Now().After(deadline) {
			t.Fatalf("sshtest: sshd did not come back after SIGHUP\n%s", s.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// HostKey is the server's current host public key.
func (s *Server) HostKey() ssh.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hostKey
}

// Fingerprint is the current host key's SHA256 fingerprint, as ssh-keygen -l prints it.
func (s *Server) Fingerprint() string { return ssh.FingerprintSHA256(s.HostKey()) }

// KnownHostsLine is a known_hosts line (with newline) for the current host key at Addr,
// in OpenSSH's "[127.0.0.1]:port" form.
func (s *Server) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(s.Addr)}, s.HostKey()) + "\n"
}

// AddCommand writes an executable script called name into BinDir, so sessions find it
// first on PATH. It returns the script's path.
func (s *Server) AddCommand(t testing.TB, name, script string) string {
	t.Helper()
	if strings.ContainsRune(name, '/') {
		t.Fatalf("sshtest: AddCommand(%q): a command name, not a path", name)
	}
	p := filepath.Join(s.BinDir, name)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return p
}

// WrongClientKey writes a fresh key that sshd does not accept and returns its path.
func (s *Server) WrongClientKey(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "wrong_ed25519")
	if _, _, err := writeKey(p); err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return p
}

// Log is everything sshd has written so far (connections, auth decisions, errors).
func (s *Server) Log() string { return s.log.String() }

// writeKey generates an ed25519 key, writes the private half to path in OpenSSH format
// with mode 0600 (sshd and ssh both insist), and returns the public half and a signer.
func writeKey(path string) (ssh.PublicKey, ssh.Signer, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "nerv-sshtest")
	if err != nil {
		return nil, nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, nil, err
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return sshPub, signer, nil
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// ClosedAddr returns a loopback address nothing listens on: connecting to it is refused
// at once, which is how tests reach an "unreachable host" without sending traffic anywhere.
func ClosedAddr(t testing.TB) string {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// SilentAddr returns a loopback address that accepts TCP connections but never speaks, like
// a host whose sshd hangs: a client must give up on its own deadline. The listener closes on
// t.Cleanup.
func SilentAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("sshtest: %v", err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String()
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// BlockDevice returns a block device of this machine, which is the join target in tests:
// join's disk check must find a real one. The test is skipped, saying why, if there is none.
func BlockDevice(t testing.TB) string {
	t.Helper()
	for _, pattern := range []string{"/dev/sd?", "/dev/vd?", "/dev/nvme?n?", "/dev/xvd?", "/dev/loop?", "/dev/ram?"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			if fi, err := os.Stat(m); err == nil && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0 {
				return m
			}
		}
	}
	t.Skip("no block device on this machine for the disk check (the target is the test machine itself)")
	return ""
}
