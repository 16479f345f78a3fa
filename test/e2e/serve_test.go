package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// daemon is a running `regate serve`.
type daemon struct {
	cmd         *exec.Cmd
	logs        *bufio.Reader // its JSON log lines on stderr
	http, socks string
	admin       string // "unix:PATH" or HOST:PORT, "" when off
}

// startServe starts `regate serve` on ephemeral ports and waits for its
// "serving" log line, which names the listeners.
func startServe(t *testing.T, args ...string) *daemon {
	t.Helper()
	return startServeWith(t, func(*exec.Cmd) {}, args...)
}

// startServeWith is startServe with prep changing the command first (its
// standard output, say).
func startServeWith(t *testing.T, prep func(*exec.Cmd), args ...string) *daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	args = append([]string{"serve", "--http", "127.0.0.1:0", "--socks", "127.0.0.1:0", "--log-format", "json", "--log-level", "info"}, args...)
	cmd := regateCmd(ctx, nil, args...)
	prep(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	d := &daemon{cmd: cmd, logs: bufio.NewReader(stderr)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	var line struct{ HTTP, SOCKS5, Admin string }
	if err := json.Unmarshal([]byte(readLineContaining(t, d.logs, `"msg":"serving"`)), &line); err != nil {
		t.Fatal(err)
	}
	d.http, d.socks, d.admin = line.HTTP, line.SOCKS5, line.Admin
	return d
}

// stop sends sig and returns the exit status and the rest of the log.
func (d *daemon) stop(t *testing.T, sig os.Signal) (int, string) {
	t.Helper()
	_ = d.cmd.Process.Signal(sig)
	rest, _ := io.ReadAll(d.logs)
	_ = d.cmd.Wait()
	return d.cmd.ProcessState.ExitCode(), string(rest)
}

func curlStatus(t *testing.T, args ...string) string {
	t.Helper()
	out, _ := exec.Command("curl", append([]string{"-s", "-o", "/dev/null", "-w", "%{http_code}"}, args...)...).Output()
	return string(out)
}

func TestServe(t *testing.T) {
	need(t, "curl")
	up := newUpstream(t)
	logPath := filepath.Join(t.TempDir(), "decisions.jsonl")
	d := startServe(t, "--allow", "allowed.test", "--allow-cidr", "127.0.0.0/8", "--resolve", "allowed.test:127.0.0.1",
		"--methods", "GET,HEAD", "--decision-log", logPath)
	allowed := "http://allowed.test:" + up.port() + "/"
	if got := curlStatus(t, "-x", "http://"+d.http, allowed); got != "200" {
		t.Errorf("anonymous HTTP client, allowed host: %s, want 200", got)
	}
	if got := curlStatus(t, "-x", "socks5h://"+d.socks, allowed); got != "200" {
		t.Errorf("anonymous SOCKS5 client, allowed host: %s, want 200", got)
	}
	if got := curlStatus(t, "-x", "http://"+d.http, "http://blocked.test:"+up.port()+"/"); got != "403" {
		t.Errorf("blocked host: %s, want 403", got)
	}
	code, logs := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Errorf("exit status after SIGTERM %d, want 0\n%s", code, logs)
	}
	if !strings.Contains(logs, `"msg":"shutting down"`) {
		t.Errorf("no shutdown log:\n%s", logs)
	}
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The plain GET, the SOCKS5 tunnel and the GET inside it (decided
	// as plain HTTP), the blocked GET.
	if n := strings.Count(string(b), `"path":"regate/network/decision"`); n != 4 {
		t.Errorf("decision log has %d events, want 4:\n%s", n, b)
	}
}

func TestServeReloadsOnSIGHUP(t *testing.T) {
	need(t, "curl")
	up := newUpstream(t)
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.rego", "package regate.network\n\ndecision := {\"allow\": false, \"reason\": \"version 1\"}\n")
	d := startServe(t, "--policy", dir, "--watch=false", "--allow-cidr", "127.0.0.0/8", "--resolve", "allowed.test:127.0.0.1")
	url := "http://allowed.test:" + up.port() + "/"
	if got := curlStatus(t, "-x", "http://"+d.http, url); got != "403" {
		t.Fatalf("before reload: %s, want 403", got)
	}
	// A broken policy is refused; the last good one keeps deciding.
	writeFile(t, dir, "policy.rego", "package regate.network\n\ndecision := {\n")
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	readLineContaining(t, d.logs, `"msg":"reload refused; the last good policy keeps deciding"`)
	if got := curlStatus(t, "-x", "http://"+d.http, url); got != "403" {
		t.Fatalf("after a refused reload: %s, want 403", got)
	}
	writeFile(t, dir, "policy.rego", "package regate.network\n\ndecision := {\"allow\": true, \"reason\": \"version 2\"}\n")
	_ = d.cmd.Process.Signal(syscall.SIGHUP)
	readLineContaining(t, d.logs, `"msg":"policy reloaded"`)
	if got := curlStatus(t, "-x", "http://"+d.http, url); got != "200" {
		t.Errorf("after reload: %s, want 200", got)
	}
	_ = policy
	if code, logs := d.stop(t, syscall.SIGINT); code != 0 {
		t.Errorf("exit status after SIGINT %d, want 0\n%s", code, logs)
	}
}

func TestServeRefusesAnonymousWhenConfigured(t *testing.T) {
	need(t, "curl")
	d := startServe(t, "--allow", "*", "--allow-anonymous=false")
	if got := curlStatus(t, "-x", "http://"+d.http, "http://allowed.test/"); got != "407" {
		t.Errorf("anonymous client: %s, want 407", got)
	}
}

func TestServeRefusesNonLoopback(t *testing.T) {
	res := regate(t, nil, "serve", "--http", "0.0.0.0:0", "--socks", "off")
	wantCode(t, res, 1)
	if !strings.Contains(res.stderr, "listen_any") {
		t.Errorf("stderr:\n%s", res.stderr)
	}
}
