package sshtest

import (
	"bytes"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

func dial(t *testing.T, s *Server, signer ssh.Signer, hostKeys ssh.HostKeyCallback) (*ssh.Client, error) {
	t.Helper()
	return ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            s.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: hostKeys,
		Timeout:         5 * time.Second,
	})
}

func run(t *testing.T, c *ssh.Client, cmd string) string {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	var out, errb bytes.Buffer
	sess.Stdout, sess.Stderr = &out, &errb
	if err := sess.Run(cmd); err != nil {
		t.Fatalf("%s: %v (stderr %q)", cmd, err, errb.String())
	}
	return out.String()
}

func TestServerAcceptsItsClientKeyAndShadowsCommands(t *testing.T) {
	s := Start(t)
	hk, err := knownhosts.New(s.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dial(t, s, s.ClientSigner, hk)
	if err != nil {
		t.Fatalf("dial with the authorized key and known_hosts: %v", err)
	}
	defer c.Close()

	if got := run(t, c, "echo hello"); got != "hello\n" {
		t.Errorf("echo: got %q", got)
	}
	s.AddCommand(t, "nerv-sshtest-probe", "#!/bin/sh\necho probe \"$@\"\n")
	if got := run(t, c, "command -v nerv-sshtest-probe && nerv-sshtest-probe a b"); got != s.BinDir+"/nerv-sshtest-probe\nprobe a b\n" {
		t.Errorf("command on BinDir: got %q", got)
	}
	if got := run(t, c, "id -un"); strings.TrimSpace(got) != s.User {
		t.Errorf("session user: got %q, want %q", got, s.User)
	}
}

func TestServerRejectsOtherKeys(t *testing.T) {
	s := Start(t)
	_, other, err := writeKey(t.TempDir() + "/k")
	if err != nil {
		t.Fatal(err)
	}
	_, err = dial(t, s, other, ssh.FixedHostKey(s.HostKey()))
	if err == nil || !strings.Contains(err.Error(), "unable to authenticate") {
		t.Fatalf("a key not in authorized_keys: got %v, want an authentication failure", err)
	}
}

func TestRotateHostKey(t *testing.T) {
	s := Start(t)
	old := s.HostKey()
	fresh := s.RotateHostKey(t)
	if bytes.Equal(old.Marshal(), fresh.Marshal()) {
		t.Fatal("RotateHostKey returned the old key")
	}
	hk, err := knownhosts.New(s.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dial(t, s, s.ClientSigner, hk)
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) != 1 {
		t.Fatalf("after rotation, the old known_hosts must report a changed key; got %v", err)
	}
	c, err := dial(t, s, s.ClientSigner, ssh.FixedHostKey(fresh))
	if err != nil {
		t.Fatalf("dial with the new key pinned: %v", err)
	}
	c.Close()
}

func TestStopEndsTheServer(t *testing.T) {
	s := Start(t)
	s.Stop()
	if _, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		t.Fatal("sshd still accepts connections after Stop")
	}
	s.Stop() // idempotent
}

func TestClosedAndSilentAddrs(t *testing.T) {
	if _, err := net.DialTimeout("tcp", ClosedAddr(t), time.Second); err == nil {
		t.Error("ClosedAddr accepted a connection")
	}
	c, err := net.DialTimeout("tcp", SilentAddr(t), time.Second)
	if err != nil {
		t.Fatalf("SilentAddr refused: %v", err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	var b [1]byte
	if _, err := c.Read(b[:]); err == nil {
		t.Error("SilentAddr spoke")
	}
}

func TestStopEndsOpenSessions(t *testing.T) {
	s := Start(t)
	c, err := dial(t, s, s.ClientSigner, ssh.FixedHostKey(s.HostKey()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Start("sleep 300"); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { s.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatal("Stop hung on an open session")
	}
	if err := sess.Wait(); err == nil {
		t.Fatal("the session's command survived Stop")
	}
}

func TestSessionEnvironment(t *testing.T) {
	s := Start(t)
	c, err := dial(t, s, s.ClientSigner, ssh.FixedHostKey(s.HostKey()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := run(t, c, `echo "$HOME"; echo "$PATH"`)
	want := s.Home + "\n" + s.BinDir + ":" + systemPath + "\n"
	if got != want {
		t.Errorf("session env: got %q, want %q", got, want)
	}
}

func TestReloadPicksUpAReplacedHostKey(t *testing.T) {
	s := Start(t)
	old := s.HostKey()
	pid := s.Pid()
	if _, _, err := writeKey(s.HostKeyPath); err != nil {
		t.Fatal(err)
	}
	s.Reload(t, true)
	if bytes.Equal(old.Marshal(), s.HostKey().Marshal()) {
		t.Fatal("Reload kept the old key")
	}
	if s.Pid() != pid {
		t.Errorf("sshd re-executes in place on SIGHUP; pid changed %d → %d", pid, s.Pid())
	}
	// Connections now see the new key (retrying: the listener reopens just after the banner check).
	var c *ssh.Client
	var err error
	for i := 0; i < 50; i++ {
		if c, err = dial(t, s, s.ClientSigner, ssh.FixedHostKey(s.HostKey())); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial with the new key: %v\n%s", err, s.Log())
	}
	c.Close()
}
