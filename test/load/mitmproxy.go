package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// errNoMitmproxy means no mitmdump binary was found.
var errNoMitmproxy = errors.New("mitmproxy not installed")

// findMitmdump returns the mitmdump binary: flag "auto" looks on PATH,
// "off" skips, anything else is the path.
func findMitmdump(flag string) (string, error) {
	switch flag {
	case "off":
		return "", errors.New("mitmproxy disabled (-mitmproxy off)")
	case "auto":
	default:
		return flag, nil
	}
	p, err := exec.LookPath("mitmdump")
	if err != nil {
		return "", errNoMitmproxy
	}
	return p, nil
}

// mitmproxyVersion is the version `mitmdump --version` prints ("8.1.1").
func mitmproxyVersion(path string) string {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "unknown"
	}
	line, _, _ := strings.Cut(string(out), "\n")
	if _, v, ok := strings.Cut(line, ":"); ok {
		return strings.TrimSpace(v)
	}
	return strings.TrimSpace(line)
}

// mitmproxy is mitmdump on a loopback port in regular (proxy) mode,
// intercepting all TLS with the CA it generates in its own confdir, and
// verifying upstream certificates against the upstream's CA.
type mitmproxy struct {
	cmd     *exec.Cmd
	addr    string
	version string
	roots   *x509.CertPool // mitmproxy's CA, for its clients
	waited  chan struct{}
}

// startMitmdump starts mitmdump quietly (no flow printed), waits until it
// accepts connections and reads the CA it generated.
func startMitmdump(path, parent, upstreamCA string) (*mitmproxy, error) {
	dir, err := os.MkdirTemp(parent, "mitmproxy-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	m := &mitmproxy{addr: "127.0.0.1:" + strconv.Itoa(port), version: mitmproxyVersion(path), waited: make(chan struct{})}
	m.cmd = exec.Command(path, "--quiet", "--listen-host", "127.0.0.1", "--listen-port", strconv.Itoa(port),
		"--set", "confdir="+dir, "--set", "ssl_verify_upstream_trusted_ca="+upstreamCA)
	m.cmd.Stdout, m.cmd.Stderr, m.cmd.Dir, m.cmd.Env = stderr, stderr, dir, cleanEnv()
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting mitmdump: %w", err)
	}
	go func() { _ = m.cmd.Wait(); close(m.waited) }()
	if err := waitAccepting(m.addr, m.waited, 30*time.Second); err != nil {
		m.stop()
		return nil, fmt.Errorf("mitmdump: %w; %s", err, tail(stderr.Name(), 5))
	}
	pem, err := os.ReadFile(filepath.Join(dir, "mitmproxy-ca-cert.pem"))
	if err != nil {
		m.stop()
		return nil, fmt.Errorf("mitmdump's CA: %w", err)
	}
	m.roots = x509.NewCertPool()
	if !m.roots.AppendCertsFromPEM(pem) {
		m.stop()
		return nil, errors.New("mitmdump's CA: no PEM certificate in mitmproxy-ca-cert.pem")
	}
	return m, nil
}

// stop sends SIGTERM and kills mitmdump if it has not exited within 10 s.
func (m *mitmproxy) stop() {
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.waited:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.waited
	}
}
