package e2e

import (
	"net"
	"strconv"
	"strings"
	"testing"
)

// TestRunSummaryEscapesControlCharacters: a reason carrying terminal
// controls (here the policy's own; the proxy refuses control characters in
// paths) reaches the terminal escaped, so it cannot fake regate's output.
func TestRunSummaryEscapesControlCharacters(t *testing.T) {
	need(t, "curl")
	dir := t.TempDir()
	writeFile(t, dir, "policy.rego", `package regate.network

decision := {"allow": false, "reason": sprintf("no %s\u001b[2K\rregate: OK\n", [input.path])}
`)
	res := regate(t, nil, "run", "--policy", dir, "--", "curl", "-s", "-o", "/dev/null", "http://denied.test/some/path")
	wantCode(t, res, 0)
	if strings.ContainsAny(res.stderr, "\x1b\r") {
		t.Errorf("stderr holds raw control characters: %q", res.stderr)
	}
	want := `regate: blocked 1 connection to denied.test:80 — no /some/path\x1b[2K\rregate: OK\n` + "\n"
	if !strings.Contains(res.stderr, want) {
		t.Errorf("stderr lacks %q:\n%q", want, res.stderr)
	}
}

// TestRunSummaryReportsFailedUpstreams: an allowed destination that
// refuses the connection is reported as failed, not blocked.
func TestRunSummaryReportsFailedUpstreams(t *testing.T) {
	need(t, "curl", "sh")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).AddrPort().Port()
	_ = l.Close() // nothing listens there now
	closed := "allowed.test:" + strconv.Itoa(int(port))
	script := `curl -s -o /dev/null http://` + closed + `/; curl -s -o /dev/null https://` + closed + `/; true`
	res := regate(t, nil, append(sandboxFlags(), "--", "sh", "-c", script)...)
	wantCode(t, res, 0)
	if want := "regate: 2 connections to " + closed + " failed — upstream refused\n"; !strings.Contains(res.stderr, want) {
		t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
	}
	if strings.Contains(res.stderr, "blocked") {
		t.Errorf("a failed upstream is reported as blocked:\n%s", res.stderr)
	}
}
