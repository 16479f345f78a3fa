package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/config"
)

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in   string
		want target
		err  string
	}{
		{in: "https://Example.COM./x", want: target{host: "example.com", port: 443, scheme: "https", path: "/x"}},
		{in: "http://example.com:8080", want: target{host: "example.com", port: 8080, scheme: "http", path: "/"}},
		{in: "[::1]:22", want: target{host: "::1", port: 22, isIP: true, scheme: "https"}},
		{in: "10.0.0.1:443", want: target{host: "10.0.0.1", port: 443, isIP: true, scheme: "https"}},
		{in: "example.com", err: "not a URL or HOST:PORT"},
		{in: "ftp://example.com/", err: `scheme "ftp"`},
		{in: "example.com:0", err: "not 1-65535"},
		{in: "exa mple.com:80", err: "exa mple.com"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseTarget(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseTarget = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseResolve(t *testing.T) {
	got, err := parseResolve([]string{"a.test:127.0.0.1", "a.test:::1", "b.test:10.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got["a.test"], []string{"127.0.0.1", "::1"}) || !slices.Equal(got["b.test"], []string{"10.0.0.1"}) {
		t.Errorf("parseResolve = %v", got)
	}
	if _, err := parseResolve([]string{"no-ip"}); err == nil {
		t.Error("parseResolve accepted a pin without an IP")
	}
}

func TestFlagKeysAreConfigKeys(t *testing.T) {
	keys := config.Keys()
	for _, fk := range flagKeys() {
		if !slices.Contains(keys, fk.key) {
			t.Errorf("flag --%s maps to unknown key %q", fk.flag, fk.key)
		}
	}
}

func TestBlockedSummary(t *testing.T) {
	s := newBlockedSummary()
	for _, ev := range []engine.Event{
		{Allow: false, Host: "evil.test", Port: 443, Reason: "no rule allows evil.test"},
		{Allow: true, Host: "ok.test", Port: 443, Reason: "allowed"},
		{Allow: false, Host: "::1", Port: 22, Reason: "denied"},
		{Allow: false, Host: "evil.test", Port: 443, Reason: "no rule allows evil.test"},
	} {
		s.observe(&ev)
	}
	var b bytes.Buffer
	s.print(&b)
	want := "regate: blocked 2 connections to evil.test:443 — no rule allows evil.test\n" +
		"regate: blocked 1 connection to [::1]:22 — denied\n"
	if b.String() != want {
		t.Errorf("summary:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string
	}{
		{args: []string{"version"}, code: 0, out: "opa "},
		{args: []string{"nope"}, code: 1},
		{args: []string{"run"}, code: exitRunFailed},
		{args: []string{"run", "--bad"}, code: exitRunFailed},
		{args: []string{"run", "--", "regate-no-such-command"}, code: exitNotFound},
		{args: []string{"decide"}, code: exitDecideError},
		{args: []string{"decide", "--bad", "x:1"}, code: exitDecideError},
		{args: []string{"check", "extra"}, code: 1},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, strings.NewReader(""), &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String(), tt.out) {
				t.Errorf("exit %d, want %d; stdout %q; stderr %q", code, tt.code, stdout.String(), stderr.String())
			}
			if code != 0 && !strings.HasPrefix(stderr.String(), "regate: ") {
				t.Errorf("stderr %q does not start with regate:", stderr.String())
			}
		})
	}
}
