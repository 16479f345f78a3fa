package e2e

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// sandboxFlags allow allowed.test, pinned to the loopback upstream.
func sandboxFlags() []string {
	return []string{"run", "--allow", "allowed.test", "--allow-cidr", "127.0.0.0/8", "--resolve", "allowed.test:127.0.0.1"}
}

func TestRunAllowsAndBlocks(t *testing.T) {
	need(t, "curl", "sh")
	up := newUpstream(t)
	script := `
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; echo " $?"; }
echo "allowed: $(curl -s http://allowed.test:` + up.port() + `/ok)"
echo "blocked http: $(code http://blocked.test:` + up.port() + `/)"
echo "blocked again: $(code http://blocked.test:` + up.port() + `/other)"
echo "blocked tunnel: $(code https://blocked.test:` + up.port() + `/)"
echo "socks allowed: $(curl -s -x "$REGATE_SOCKS_PROXY" http://allowed.test:` + up.port() + `/socks)"
echo "socks blocked: $(code -x "$REGATE_SOCKS_PROXY" http://blocked.test:` + up.port() + `/)"
`
	res := regate(t, nil, append(sandboxFlags(), "--", "sh", "-c", script)...)
	wantCode(t, res, 0)
	for _, want := range []string{
		"allowed: hello from upstream: GET /ok",
		"blocked http: 403 0",
		"blocked again: 403 0",
		"blocked tunnel: 000 56", // curl: CONNECT answered 403
		"socks allowed: hello from upstream: GET /socks",
		"socks blocked: 000 97", // curl: SOCKS5 connect refused
	} {
		if !strings.Contains(res.stdout, want+"\n") {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
	if got := up.hits.Load(); got != 2 {
		t.Errorf("upstream saw %d requests, want 2 (the allowed ones only)", got)
	}
	wantSummary := "regate: blocked 4 connections to blocked.test:" + up.port() + " — no rule allows blocked.test\n"
	if !strings.Contains(res.stderr, wantSummary) {
		t.Errorf("stderr lacks the summary %q:\n%s", wantSummary, res.stderr)
	}
	if strings.Contains(res.stderr, "allowed.test") {
		t.Errorf("summary mentions an allowed destination:\n%s", res.stderr)
	}
}

func TestRunQuietHasNoSummary(t *testing.T) {
	need(t, "curl")
	res := regate(t, nil, "run", "--quiet", "--", "curl", "-s", "-o", "/dev/null", "http://blocked.test/")
	wantCode(t, res, 0)
	if strings.Contains(res.stderr, "blocked") {
		t.Errorf("--quiet printed a summary:\n%s", res.stderr)
	}
}

func TestRunExitStatus(t *testing.T) {
	need(t, "sh")
	dir := t.TempDir()
	notExec := writeFile(t, dir, "not-executable", "#!/bin/sh\nexit 0\n")
	badPolicy := writeFile(t, dir, "bad.rego", "package regate.network\n\ndecision := {\"allow\": true\n")
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{name: "success", args: []string{"true"}, code: 0},
		{name: "child status", args: []string{"sh", "-c", "exit 7"}, code: 7},
		{name: "child killed", args: []string{"sh", "-c", "kill -KILL $$"}, code: 128 + 9},
		{name: "not found", args: []string{"no-such-command-regate-e2e"}, code: 127, stderr: "command not found"},
		{name: "not executable", args: []string{notExec}, code: 126, stderr: "permission denied"},
		{name: "bad policy", args: []string{"--policy", badPolicy, "--", "true"}, code: 125, stderr: "bad.rego:4"},
		{name: "bad flag", args: []string{"--no-such-flag", "--", "true"}, code: 125, stderr: "unknown flag"},
		{name: "bad pattern", args: []string{"--allow", "exa mple.com", "--", "true"}, code: 125, stderr: `allow[0]: pattern "exa mple.com"`},
		{name: "no command", args: nil, code: 125, stderr: "requires at least 1 arg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := regate(t, nil, append([]string{"run"}, tt.args...)...)
			wantCode(t, res, tt.code)
			if !strings.Contains(res.stderr, tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, res.stderr)
			}
		})
	}
}

func TestRunForwardsSignals(t *testing.T) {
	need(t, "sh")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	script := `trap 'echo got HUP' HUP; trap 'echo got TERM; exit 42' TERM; echo ready; while :; do sleep 0.05; done`
	cmd := regateCmd(ctx, nil, "run", "--", "sh", "-c", script)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	out := bufio.NewReader(stdout)
	readLineContaining(t, out, "ready")
	_ = cmd.Process.Signal(syscall.SIGHUP)
	readLineContaining(t, out, "got HUP")
	_ = cmd.Process.Signal(syscall.SIGTERM)
	readLineContaining(t, out, "got TERM")
	_ = cmd.Wait()
	if got := cmd.ProcessState.ExitCode(); got != 42 {
		t.Errorf("exit status %d, want the child's 42", got)
	}
}

func TestRunSignalKillsChild(t *testing.T) {
	need(t, "sh")
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := regateCmd(ctx, nil, "run", "--", "sh", "-c", "echo ready; while :; do sleep 0.05; done")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readLineContaining(t, stdout, "ready")
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	if got := cmd.ProcessState.ExitCode(); got != 128+int(syscall.SIGINT) {
		t.Errorf("exit status %d, want %d", got, 128+int(syscall.SIGINT))
	}
}

func TestRunChildEnvironment(t *testing.T) {
	res := regate(t, []string{"E2E_KEPT=yes", "HTTP_PROXY=http://stale:1", "JAVA_TOOL_OPTIONS=-Xmx64m"},
		"run", "--attempt-id", "e2e-attempt", "--", "env")
	wantCode(t, res, 0)
	env := map[string]string{}
	for _, line := range strings.Split(res.stdout, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	httpRe := regexp.MustCompile(`^http://e2e-attempt:[0-9a-f]{32}@127\.0\.0\.1:(\d+)$`)
	m := httpRe.FindStringSubmatch(env["HTTP_PROXY"])
	if m == nil {
		t.Fatalf("HTTP_PROXY = %q, want %s", env["HTTP_PROXY"], httpRe)
	}
	port := m[1]
	for _, k := range []string{"HTTPS_PROXY", "http_proxy", "https_proxy", "npm_config_proxy", "npm_config_https_proxy",
		"YARN_HTTP_PROXY", "YARN_HTTPS_PROXY", "PIP_PROXY", "BUNDLE_HTTP_PROXY", "BUNDLE_HTTPS_PROXY",
		"DOCKER_HTTP_PROXY", "DOCKER_HTTPS_PROXY"} {
		if env[k] != env["HTTP_PROXY"] {
			t.Errorf("%s = %q, want %q", k, env[k], env["HTTP_PROXY"])
		}
	}
	for _, k := range []string{"ALL_PROXY", "all_proxy"} {
		if env[k] != env["HTTP_PROXY"] {
			t.Errorf("%s = %q, want the HTTP proxy %q (httpx refuses a socks5h:// ALL_PROXY)", k, env[k], env["HTTP_PROXY"])
		}
	}
	socksRe := regexp.MustCompile(`^socks5h://e2e-attempt:[0-9a-f]{32}@127\.0\.0\.1:\d+$`)
	if !socksRe.MatchString(env["REGATE_SOCKS_PROXY"]) {
		t.Errorf("REGATE_SOCKS_PROXY = %q, want %s", env["REGATE_SOCKS_PROXY"], socksRe)
	}
	for k, want := range map[string]string{
		"REGATE_ATTEMPT_ID":  "e2e-attempt",
		"NODE_USE_ENV_PROXY": "1",
		"E2E_KEPT":           "yes",
		"JAVA_TOOL_OPTIONS":  "-Xmx64m -Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=" + port + " -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=" + port + " -Dhttp.nonProxyHosts=",
		"GIT_SSH_COMMAND":    "ssh -o 'ProxyCommand=" + regateBin + " connect %h %p'",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	for _, k := range []string{"NO_PROXY", "no_proxy"} {
		if v, ok := env[k]; !ok || v != "" {
			t.Errorf("%s = %q (set: %v), want set and empty", k, v, ok)
		}
	}
}

// The listeners of `regate run` belong to its attempt: no credentials are
// attributed to it, wrong ones are refused, and the policy sees the
// attempt's id and labels.
func TestRunAttemptIdentity(t *testing.T) {
	need(t, "curl", "sh")
	up := newUpstream(t)
	policy := writeFile(t, t.TempDir(), "policy.rego", `package regate.network

decision := {"allow": true, "reason": "blue team"} if {
	input.attempt_id == "e2e-blue"
	input.attempt.labels.team == "blue"
} else := {"allow": false, "reason": sprintf("attempt %q is not the blue team", [input.attempt_id])}
`)
	url := "http://allowed.test:" + up.port() + "/"
	script := `
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; echo; }
hostport=${HTTP_PROXY##*@}
echo "with credentials: $(code ` + url + `)"
echo "without credentials: $(code -x "http://$hostport" ` + url + `)"
echo "wrong token: $(code -x "http://e2e-blue:wrong@$hostport" ` + url + `)"
`
	res := regate(t, nil, "run", "--policy", policy, "--attempt-id", "e2e-blue", "--label", "team=blue",
		"--allow-cidr", "127.0.0.0/8", "--resolve", "allowed.test:127.0.0.1", "--", "sh", "-c", script)
	wantCode(t, res, 0)
	for _, want := range []string{"with credentials: 200", "without credentials: 200", "wrong token: 407"} {
		if !strings.Contains(res.stdout, want+"\n") {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
	res = regate(t, nil, "run", "--policy", policy, "--attempt-id", "e2e-red", "--label", "team=red",
		"--allow-cidr", "127.0.0.0/8", "--resolve", "allowed.test:127.0.0.1", "--",
		"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url)
	wantCode(t, res, 0)
	if res.stdout != "403" || !strings.Contains(res.stderr, `attempt "e2e-red" is not the blue team`) {
		t.Errorf("red attempt: stdout %q, stderr:\n%s", res.stdout, res.stderr)
	}
}

// The decision log of a run holds one OPA decision-log event per decision.
func TestRunDecisionLog(t *testing.T) {
	need(t, "curl")
	logPath := filepath.Join(t.TempDir(), "decisions.jsonl")
	res := regate(t, nil, "run", "--decision-log", logPath, "--attempt-id", "e2e-log", "--",
		"curl", "-s", "-o", "/dev/null", "http://blocked.test/")
	wantCode(t, res, 0)
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 1 {
		t.Fatalf("decision log has %d lines, want 1:\n%s", len(lines), b)
	}
	for _, want := range []string{`"path":"regate/network/decision"`, `"decision_id":"`, `"attempt_id":"e2e-log"`, `"host":"blocked.test"`, `"allow":false`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("decision log event lacks %s:\n%s", want, lines[0])
		}
	}
}
