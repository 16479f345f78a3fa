package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/proxy"
)

// TestSummaryBounded: 5,000 distinct denied hosts keep at most
// summaryKept destinations in memory and print summaryShown lines plus one
// for the rest.
func TestSummaryBounded(t *testing.T) {
	s := newBlockedSummary()
	deny := func(host, reason string) { s.observe(&engine.Event{Host: host, Port: 443, Reason: reason}) }
	for i := range 5000 {
		deny(fmt.Sprintf("h%d.test", i), "no rule allows")
		if i == 7 {
			deny("h7.test", "no rule allows")
			deny("h7.test", "no rule allows")
		}
	}
	deny("huge.test", strings.Repeat("x", 1<<20))
	if len(s.order) != summaryKept || len(s.count) != summaryKept {
		t.Fatalf("tracking %d/%d destinations, want %d", len(s.order), len(s.count), summaryKept)
	}
	var b bytes.Buffer
	s.print(&b)
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != summaryShown+1 {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), summaryShown+1, b.String())
	}
	if want := "regate: blocked 3 connections to h7.test:443 — no rule allows"; lines[0] != want {
		t.Errorf("first line %q, want the most blocked %q", lines[0], want)
	}
	// 1,004 tracked beyond the 20 shown, 3,977 untracked connections.
	if want := "regate: and at least 1005 more destinations, 4981 connections"; lines[summaryShown] != want {
		t.Errorf("last line %q, want %q", lines[summaryShown], want)
	}
}

// TestSummaryKeepsLongReasonsShort: a reason is kept clipped.
func TestSummaryKeepsLongReasonsShort(t *testing.T) {
	s := newBlockedSummary()
	s.observe(&engine.Event{Host: "a.test", Port: 80, Reason: strings.Repeat("é", 1<<19)})
	var b bytes.Buffer
	s.print(&b)
	if b.Len() > 2*summaryReasonMax || !strings.HasSuffix(b.String(), "é…\n") {
		t.Fatalf("summary of %d bytes: %q", b.Len(), b.String())
	}
}

// TestSummaryEscapes: nothing a policy reason or a host carries reaches the
// terminal as a control character.
func TestSummaryEscapes(t *testing.T) {
	s := newBlockedSummary()
	s.observe(&engine.Event{Host: "a.test", Port: 80, Reason: "no /x\x1b[2K\rregate: OK\n"})
	s.observe(&engine.Event{Host: "b\x07.test", Port: 80, Reason: "nope \u202egnp.exe"})
	var b bytes.Buffer
	s.print(&b)
	for i, c := range b.Bytes() {
		if (c < 0x20 && c != '\n') || c == 0x7f {
			t.Fatalf("raw control byte %#x at %d in %q", c, i, b.String())
		}
	}
	for _, want := range []string{
		`regate: blocked 1 connection to a.test:80 — no /x\x1b[2K\rregate: OK\n` + "\n",
		`regate: blocked 1 connection to b\x07.test:80 — nope \u202egnp.exe` + "\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain ascii", "plain ascii"},
		{"café ✓ 日本", "café ✓ 日本"},
		{"\x1b[31mred", `\x1b[31mred`},
		{"a\r\nb\tc", `a\r\nb\tc`},
		{"nul\x00del\x7f", `nul\x00del\x7f`},
		{"c1\u0085", `c1\x85`},
		{"bidi\u202eoverride", `bidi\u202eoverride`},
		{"zero\u200bwidth", `zero\u200bwidth`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"replacement \ufffd kept", "replacement \ufffd kept"},
		{"tag\U000e0041", `tag\U000e0041`},
	}
	for _, tt := range tests {
		if got := printable(tt.in); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestSummaryFailed: allowed connections whose upstream could not be
// reached are failed, not blocked; a cut tunnel (something was dialed) and
// a client that gave up are neither.
func TestSummaryFailed(t *testing.T) {
	refused := fmt.Errorf("dialing upstream: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)})
	nxdomain := fmt.Errorf("resolving nx.test: %w", &net.DNSError{Err: "no such host", Name: "nx.test", IsNotFound: true})
	s := newBlockedSummary()
	for _, o := range []proxy.Outcome{
		{Host: "a.test", Port: 443, Allowed: true, Err: refused},
		{Host: "a.test", Port: 443, Allowed: true, Err: refused},
		{Host: "nx.test", Port: 80, Allowed: true, Err: nxdomain},
		{Host: "t.test", Port: 443, Allowed: true, Err: fmt.Errorf("dialing upstream: %w", context.DeadlineExceeded)},
		{Host: "cut.test", Port: 443, Allowed: true, Upstream: "127.0.0.1:443", Err: errors.New("connection reset")},
		{Host: "gone.test", Port: 443, Allowed: true, Err: context.Canceled},
		{Host: "ok.test", Port: 443, Allowed: true, Upstream: "127.0.0.1:443"},
		{Host: "denied.test", Port: 443, Err: errors.New("denied")}, // counted from its decision event
	} {
		s.outcome(o)
	}
	var b bytes.Buffer
	s.print(&b)
	want := "regate: 2 connections to a.test:443 failed — upstream refused\n" +
		"regate: 1 connection to nx.test:80 failed — upstream name not found\n" +
		"regate: 1 connection to t.test:443 failed — upstream timed out\n"
	if b.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", b.String(), want)
	}
}

// A tunnel refused more than once (same destination, reason and scheme) is
// a client retrying: the line says so. Plain requests' 403s are not
// retried, and a CONNECT and a SOCKS5 request are two requests.
func TestSummarySaysTheClientRetried(t *testing.T) {
	s := newBlockedSummary()
	deny := func(host, scheme string) {
		method := engine.MethodConnect
		if scheme == engine.SchemeHTTP {
			method = "GET"
		}
		s.observe(&engine.Event{Host: host, Port: 443, Scheme: scheme, Method: method, Reason: "no rule allows " + host})
	}
	for range 6 {
		deny("pypi.test", engine.SchemeHTTPS)
	}
	deny("plain.test", engine.SchemeHTTP)
	deny("plain.test", engine.SchemeHTTP)
	deny("mixed.test", engine.SchemeHTTPS)
	deny("mixed.test", engine.SchemeSOCKS5)
	deny("socks.test", engine.SchemeSOCKS5)
	deny("socks.test", engine.SchemeSOCKS5)
	for range 2 { // requests inside an inspected tunnel: responses, not retried tunnels
		s.observe(&engine.Event{Host: "inspected.test", Port: 443, Scheme: engine.SchemeHTTPS, Method: "POST", Reason: "method POST is not allowed"})
	}
	var b bytes.Buffer
	s.print(&b)
	for _, want := range []string{
		"regate: blocked 6 connections (the client retried) to pypi.test:443 — no rule allows pypi.test\n",
		"regate: blocked 2 connections to plain.test:443 — no rule allows plain.test\n",
		"regate: blocked 2 connections to mixed.test:443 — no rule allows mixed.test\n",
		"regate: blocked 2 connections (the client retried) to socks.test:443 — no rule allows socks.test\n",
		"regate: blocked 2 inspected HTTPS requests to inspected.test:443 — method POST is not allowed\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, b.String())
		}
	}
}

// TestSummaryWouldHaveBlocked: audit events (allowed, the policy denies
// them) are "would have blocked", apart from real blocks; plain allows are
// not counted; an audited tunnel is never "retried", and the requests
// inside it are not more connections.
func TestSummaryWouldHaveBlocked(t *testing.T) {
	s := newBlockedSummary()
	audit := &engine.Event{Allow: true, Audit: true, Host: "example.org", Port: 443, Scheme: engine.SchemeHTTPS, Method: engine.MethodConnect, Reason: "no rule allows example.org"}
	for range 3 {
		s.observe(audit)
	}
	s.observe(&engine.Event{Allow: true, Audit: true, Host: "api.test", Port: 443, Scheme: engine.SchemeHTTPS, Method: "GET", Reason: "GET not allowed"})
	s.observe(&engine.Event{Allow: true, Host: "ok.test", Port: 443, Reason: "allowed"})
	// A SOCKS5 tunnel and the plain request inside it are one connection;
	// a plain request of another client is one more.
	socks := &engine.Event{Allow: true, Audit: true, Host: "b.test", Port: 80, Scheme: engine.SchemeSOCKS5, Method: engine.MethodConnect, Reason: "no rule allows b.test", Client: "127.0.0.1:5001"}
	inner := &engine.Event{Allow: true, Audit: true, Host: "b.test", Port: 80, Scheme: engine.SchemeHTTP, Method: "GET", Reason: "no rule allows b.test", Client: "127.0.0.1:5001"}
	s.observe(socks)
	s.observe(inner)
	s.observe(inner)
	inner.Client = "127.0.0.1:5002"
	s.observe(inner)
	s.observe(&engine.Event{Host: "example.org", Port: 443, Scheme: engine.SchemeHTTPS, Method: engine.MethodConnect, Reason: "ssrf: loopback"})
	var b bytes.Buffer
	s.print(&b)
	want := "regate: would have blocked 3 connections to example.org:443 — no rule allows example.org\n" +
		"regate: would have blocked 2 connections to b.test:80 — no rule allows b.test\n" +
		"regate: would have blocked 1 inspected HTTPS request to api.test:443 — GET not allowed\n" +
		"regate: blocked 1 connection to example.org:443 — ssrf: loopback\n"
	if b.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", b.String(), want)
	}
}
