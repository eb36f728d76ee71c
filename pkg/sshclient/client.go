// Package sshclient is NERV's SSH client: it connects to a node with the host key verified
// against a known_hosts file (unknown keys are accepted only by fingerprint or explicit
// confirmation and then recorded; changed keys are always refused), authenticates with a key
// file or ssh-agent, runs commands, streams their output and reads files.
package sshclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// DefaultConnectTimeout bounds the TCP connect plus the SSH handshake and authentication.
const DefaultConnectTimeout = 10 * time.Second

// Config says where and how to connect.
type Config struct {
	// Addr is "host:port" or "host" (port 22).
	Addr string
	// User to log in as; default "root" (what nixos-anywhere's installer images offer).
	User string
	// IdentityFile is a private key file (ssh -i). Empty: use ssh-agent (SSH_AUTH_SOCK), then
	// the unencrypted default keys ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
	IdentityFile string
	// KnownHostsFile; default ~/.ssh/known_hosts.
	KnownHostsFile string
	// AcceptHostKey is a "SHA256:..." fingerprint the caller has verified out of band: an
	// unknown host offering exactly this key is accepted and recorded in KnownHostsFile.
	AcceptHostKey string
	// ConfirmHostKey, if set, is asked about an unknown host key (when AcceptHostKey is empty);
	// true accepts and records it. Interactive callers prompt on a terminal here.
	ConfirmHostKey func(addr, keyType, fingerprint string) (bool, error)
	// ConnectTimeout bounds connecting, the handshake and authentication; default
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
}

// Client is an authenticated SSH connection.
type Client struct {
	conn  *ssh.Client
	addr  string
	user  string
	extra []func() error // closed with the client (the agent socket)
	// HostKeyAdded reports that the host key was unknown and has been recorded.
	HostKeyAdded bool
}

// Target is "user@host:port", for messages.
func (c *Client) Target() string { return c.user + "@" + c.addr }

// Close ends the connection.
func (c *Client) Close() error {
	err := c.conn.Close()
	for _, f := range c.extra {
		_ = f()
	}
	return err
}

// AuthError means the server refused every credential offered.
type AuthError struct {
	Target string
	Tried  string
	Err    error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("authenticating to %s with %s: the server refused it (is the public key in the target's authorized_keys?): %v", e.Target, e.Tried, e.Err)
}

func (e *AuthError) Unwrap() error { return e.Err }

// ConnectError means the host could not be reached or did not complete the SSH handshake in time.
type ConnectError struct {
	Addr    string
	Timeout time.Duration
	Err     error
}

func (e *ConnectError) Error() string {
	return fmt.Sprintf("cannot reach SSH on %s (connect timeout %s): %v; is the machine up, booted into an installer or NixOS with sshd, and is the address right?", e.Addr, e.Timeout, e.Err)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// Dial connects and authenticates. Host key problems come back as *UnknownHostKeyError or
// *HostKeyChangedError, refused credentials as *AuthError, network failures as *ConnectError.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	addr := cfg.Addr
	if _, _, err := net.SplitHostPort(addr); err != nil {
		addr = net.JoinHostPort(addr, "22")
	}
	user := cfg.User
	if user == "" {
		user = "root"
	}
	timeout := cfg.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	known := cfg.KnownHostsFile
	if known == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("finding known_hosts: %w (pass a known_hosts file)", err)
		}
		known = filepath.Join(home, ".ssh", "known_hosts")
	}
	hk, err := newHostKeys(known, cfg.AcceptHostKey, cfg.ConfirmHostKey)
	if err != nil {
		return nil, err
	}
	auth, tried, closers, err := authMethods(cfg.IdentityFile)
	if err != nil {
		return nil, err
	}
	closeAll := func() {
		for _, f := range closers {
			_ = f()
		}
	}

	target := user + "@" + addr
	dialer := net.Dialer{Timeout: timeout}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tcp, err := dialer.DialContext(dctx, "tcp", addr)
	if err != nil {
		closeAll()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("connecting to %s: %w", addr, ctx.Err())
		}
		return nil, &ConnectError{Addr: addr, Timeout: timeout, Err: err}
	}
	// The handshake has the same deadline; a cancelled context cuts it short too.
	_ = tcp.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { tcp.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(tcp, addr, &ssh.ClientConfig{
		User:              user,
		Auth:              auth,
		HostKeyCallback:   hk.check,
		HostKeyAlgorithms: hk.algorithms(addr),
		Timeout:           timeout,
	})
	stopped := stop()
	if err != nil {
		tcp.Close()
		closeAll()
		var unknown *UnknownHostKeyError
		var changed *HostKeyChangedError
		switch {
		case errors.As(err, &unknown):
			return nil, unknown
		case errors.As(err, &changed):
			return nil, changed
		case !stopped || ctx.Err() != nil:
			return nil, fmt.Errorf("connecting to %s: %w", addr, ctx.Err())
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, &AuthError{Target: target, Tried: tried, Err: err}
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, &ConnectError{Addr: addr, Timeout: timeout, Err: fmt.Errorf("no SSH handshake: %w", err)}
		}
		return nil, &ConnectError{Addr: addr, Timeout: timeout, Err: err}
	}
	_ = tcp.SetDeadline(time.Time{})
	return &Client{conn: ssh.NewClient(sc, chans, reqs), addr: addr, user: user, extra: closers, HostKeyAdded: hk.accepted}, nil
}

// authMethods picks the credentials: the key file if given, else the agent, else the
// default key files. tried describes them for errors.
func authMethods(identity string) ([]ssh.AuthMethod, string, []func() error, error) {
	if identity != "" {
		pem, err := os.ReadFile(identity)
		if err != nil {
			return nil, "", nil, fmt.Errorf("reading SSH key: %w", err)
		}
		signer, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		if errors.As(err, &missing) {
			// An encrypted key: the agent may hold it already (ssh-add); no prompt here.
			if m, closer, ok := agentAuth(); ok {
				return []ssh.AuthMethod{m}, "ssh-agent (" + identity + " is passphrase-protected)", []func() error{closer}, nil
			}
			return nil, "", nil, fmt.Errorf("SSH key %s is passphrase-protected: add it to ssh-agent (ssh-add %s) and make sure SSH_AUTH_SOCK is set", identity, identity)
		}
		if err != nil {
			return nil, "", nil, fmt.Errorf("parsing SSH key %s: %w", identity, err)
		}
		return []ssh.AuthMethod{ssh.PublicKeys(signer)}, "key " + identity, nil, nil
	}
	if m, closer, ok := agentAuth(); ok {
		return []ssh.AuthMethod{m}, "ssh-agent keys", []func() error{closer}, nil
	}
	home, _ := os.UserHomeDir()
	var signers []ssh.Signer
	var names []string
	for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
		p := filepath.Join(home, ".ssh", name)
		pem, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		if s, err := ssh.ParsePrivateKey(pem); err == nil {
			signers = append(signers, s)
			names = append(names, p)
		}
	}
	if len(signers) == 0 {
		return nil, "", nil, errors.New("no SSH credentials: pass a key file (-i), or run ssh-agent with your key loaded (SSH_AUTH_SOCK)")
	}
	return []ssh.AuthMethod{ssh.PublicKeys(signers...)}, "keys " + strings.Join(names, ", "), nil, nil
}

// agentAuth connects to the agent at SSH_AUTH_SOCK.
func agentAuth() (ssh.AuthMethod, func() error, bool) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, false
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, nil, false
	}
	return ssh.PublicKeysCallback(agent.NewClient(conn).Signers), conn.Close, true
}

// SplitTarget parses "host", "host:port" or "[v6]:port" into host and port (default 22).
func SplitTarget(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr, 22, nil
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return "", 0, fmt.Errorf("%q: port must be 1-65535", addr)
	}
	return host, p, nil
}
