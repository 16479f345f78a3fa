package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

type decision struct {
	Allow      bool              `json:"allow"`
	Reason     string            `json:"reason"`
	Rule       string            `json:"rule"`
	DecisionID string            `json:"decision_id"`
	Bundles    map[string]string `json:"bundles"`
	Modules    []string          `json:"modules"`
	Input      struct {
		Host      string `json:"host"`
		Port      int    `json:"port"`
		Scheme    string `json:"scheme"`
		Method    string `json:"method"`
		AttemptID string `json:"attempt_id"`
		Path      string `json:"path"`
		HostIsIP  bool   `json:"host_is_ip"`
	} `json:"input"`
}

func decodeDecision(t *testing.T, res result) decision {
	t.Helper()
	var d decision
	if err := json.Unmarshal([]byte(res.stdout), &d); err != nil {
		t.Fatalf("decide printed no decision JSON: %v\nstdout: %s\nstderr: %s", err, res.stdout, res.stderr)
	}
	if d.DecisionID == "" || d.Reason == "" {
		t.Errorf("decision lacks id or reason: %+v", d)
	}
	return d
}

func TestDecide(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		allow  bool
		rule   string
		host   string
		port   int
		scheme string
		method string
		path   string
	}{
		{name: "allowed tunnel", args: []string{"--allow", "**.example.com", "api.Example.COM.:443"},
			code: 0, allow: true, rule: "allow:**.example.com", host: "api.example.com", port: 443, scheme: "https", method: "CONNECT"},
		{name: "denied by default", args: []string{"--allow", "example.com", "evil.test:443"},
			code: 1, rule: "default", host: "evil.test", port: 443, scheme: "https", method: "CONNECT"},
		{name: "deny wins", args: []string{"--allow", "**.example.com", "--deny", "bad.example.com", "https://bad.example.com/"},
			code: 1, rule: "deny:bad.example.com", host: "bad.example.com", port: 443, scheme: "https", method: "CONNECT"},
		{name: "plain http url", args: []string{"--allow", "example.com", "--methods", "GET,HEAD", "http://example.com:8080/a/b?q=1"},
			code: 0, allow: true, host: "example.com", port: 8080, scheme: "http", method: "GET", path: "/a/b", rule: "allow:example.com"},
		{name: "read-only mode", args: []string{"--allow", "example.com", "--methods", "GET,HEAD", "--method", "post", "http://example.com/"},
			code: 1, rule: "methods", host: "example.com", port: 80, scheme: "http", method: "POST", path: "/"},
		{name: "socks5 to an IP", args: []string{"--allow", "10.0.0.0/8:22", "--scheme", "socks5", "10.1.2.3:22"},
			code: 0, allow: true, host: "10.1.2.3", port: 22, scheme: "socks5", method: "CONNECT", rule: "allow:10.0.0.0/8:22"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := regate(t, nil, append([]string{"decide"}, tt.args...)...)
			wantCode(t, res, tt.code)
			d := decodeDecision(t, res)
			in := d.Input
			if d.Allow != tt.allow || d.Rule != tt.rule || in.Host != tt.host || in.Port != tt.port ||
				in.Scheme != tt.scheme || in.Method != tt.method || in.Path != tt.path {
				t.Errorf("got allow=%v rule=%q input=%+v\nwant allow=%v rule=%q host=%q port=%d scheme=%q method=%q path=%q",
					d.Allow, d.Rule, in, tt.allow, tt.rule, tt.host, tt.port, tt.scheme, tt.method, tt.path)
			}
			if len(d.Modules) == 0 || d.Bundles == nil {
				t.Errorf("decision lacks the policy's modules or bundles: %+v", d)
			}
		})
	}
}

func TestDecideAttemptID(t *testing.T) {
	res := regate(t, nil, "decide", "--attempt-id", "e2e-1", "x.test:80")
	wantCode(t, res, 1)
	if d := decodeDecision(t, res); d.Input.AttemptID != "e2e-1" {
		t.Errorf("attempt_id = %q", d.Input.AttemptID)
	}
}

func TestDecideErrors(t *testing.T) {
	dir := t.TempDir()
	broken := writeFile(t, dir, "broken.rego", "package regate.network\n\ndecision := {\"allow\": true\n")
	undefinedVar := writeFile(t, dir, "unsafe/p.rego", "package regate.network\n\ndecision := {\"allow\": x}\n")
	tests := []struct {
		name, stderr string
		args         []string
	}{
		{name: "parse error", args: []string{"--policy", broken, "x.test:443"}, stderr: "broken.rego:4"},
		{name: "compile error", args: []string{"--policy", undefinedVar, "x.test:443"}, stderr: "p.rego:3"},
		{name: "bad target", args: []string{"not a target"}, stderr: "not a URL or HOST:PORT"},
		{name: "bad port", args: []string{"x.test:99999"}, stderr: "not 1-65535"},
		{name: "bad scheme", args: []string{"--scheme", "gopher", "x.test:70"}, stderr: "--scheme"},
		{name: "bad flag", args: []string{"--nope", "x.test:1"}, stderr: "unknown flag"},
		{name: "two targets", args: []string{"a.test:1", "b.test:1"}, stderr: "accepts 1 arg"},
		{name: "bad config", args: []string{"--allow-cidr", "300.0.0.0/8", "x.test:1"}, stderr: `allow_cidrs[0]: invalid CIDR "300.0.0.0/8"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := regate(t, nil, append([]string{"decide"}, tt.args...)...)
			wantCode(t, res, 2)
			if !strings.Contains(res.stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, res.stderr)
			}
		})
	}
}
