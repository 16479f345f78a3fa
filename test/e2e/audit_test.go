package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// loggedEvent is what these tests read of a decision-log line.
type loggedEvent struct {
	Input struct {
		Host      string `json:"host"`
		Scheme    string `json:"scheme"`
		Method    string `json:"method"`
		AttemptID string `json:"attempt_id"`
	} `json:"input"`
	Result map[string]any `json:"result"`
}

func readDecisionLog(t *testing.T, path string) []loggedEvent {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []loggedEvent
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var ev loggedEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("decision log line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}

// TestRunAudit is the acceptance: under --audit, what the default
// policy denies (no --allow at all) goes through — plain requests, a
// CONNECT tunnel and a SOCKS5 one — and the summary says what would have
// been blocked; every decision is logged as an audited allow with the
// policy's reason and rule.
func TestRunAudit(t *testing.T) {
	need(t, "curl", "sh")
	up := newUpstream(t)
	hosts := []string{"a.test", "b.a.test", "c.a.test", "d.a.test", "x.b.co.uk"}
	args := []string{"run", "--audit", "--allow-cidr", "127.0.0.0/8"}
	script := "set -e\n"
	for _, h := range hosts {
		args = append(args, "--resolve", h+":127.0.0.1")
		script += "curl -sf http://" + h + ":" + up.port() + "/\n"
	}
	script += "curl -sf -p http://a.test:" + up.port() + "/tunnel\n"
	script += `curl -sf -x "$REGATE_SOCKS_PROXY" http://b.a.test:` + up.port() + "/socks\n"
	logPath := filepath.Join(t.TempDir(), "d.jsonl")
	res := regate(t, nil, append(args, "--decision-log", logPath, "--", "sh", "-c", script)...)
	wantCode(t, res, 0)
	if n := up.hits.Load(); n != 7 {
		t.Errorf("%d requests reached the upstream, want 7\nstderr: %s", n, res.stderr)
	}
	for _, want := range []string{
		"regate: would have blocked 2 connections to a.test:" + up.port() + " — no rule allows a.test\n",
		"regate: would have blocked 2 connections to b.a.test:" + up.port() + " — no rule allows b.a.test\n",
		"regate: would have blocked 1 connection to c.a.test:" + up.port() + " — no rule allows c.a.test\n",
		"regate: would have blocked 1 connection to d.a.test:" + up.port() + " — no rule allows d.a.test\n",
		"regate: would have blocked 1 connection to x.b.co.uk:" + up.port() + " — no rule allows x.b.co.uk\n",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, res.stderr)
		}
	}
	if strings.Contains(res.stderr, "regate: blocked") {
		t.Errorf("something was blocked:\n%s", res.stderr)
	}
	// Five plain requests; the CONNECT and the SOCKS5 tunnel, each with
	// the request inside it.
	events := readDecisionLog(t, logPath)
	if len(events) != 9 {
		t.Errorf("%d decision events, want 9", len(events))
	}
	for _, ev := range events {
		want := map[string]any{"allow": true, "audit": true, "reason": "no rule allows " + ev.Input.Host, "rule": "default"}
		if len(ev.Result) != len(want) || ev.Result["allow"] != true || ev.Result["audit"] != true ||
			ev.Result["reason"] != want["reason"] || ev.Result["rule"] != want["rule"] {
			t.Errorf("%s %s %s: result %v, want %v", ev.Input.Scheme, ev.Input.Method, ev.Input.Host, ev.Result, want)
		}
	}
}

// TestRunAuditKeepsTheSSRFGuard: --audit relaxes the policy, never the
// guard: loopback (pinned, no --allow-cidr) and the cloud metadata address
// are still refused, and the summary says blocked.
func TestRunAuditKeepsTheSSRFGuard(t *testing.T) {
	need(t, "curl", "sh")
	up := newUpstream(t)
	script := `
code() { curl -s -o /dev/null -w "$@"; echo; }
code '%{http_code}' http://a.test:` + up.port() + `/
code '%{http_connect}' -p http://a.test:` + up.port() + `/
code '%{http_code}' http://169.254.169.254/latest/meta-data/
`
	logPath := filepath.Join(t.TempDir(), "d.jsonl")
	res := regate(t, nil, "run", "--audit", "--resolve", "a.test:127.0.0.1", "--decision-log", logPath, "--", "sh", "-c", script)
	wantCode(t, res, 0)
	if res.stdout != "403\n403\n403\n" {
		t.Errorf("answers %q, want three 403s\nstderr: %s", res.stdout, res.stderr)
	}
	if n := up.hits.Load(); n != 0 {
		t.Errorf("%d requests reached the upstream", n)
	}
	for _, want := range []string{
		"regate: blocked 2 connections to a.test:" + up.port() + " — destination resolves to a loopback address",
		"regate: blocked 1 connection to 169.254.169.254:80 — destination resolves to",
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("summary lacks %q:\n%s", want, res.stderr)
		}
	}
	denies := 0
	for _, ev := range readDecisionLog(t, logPath) {
		rule, _ := ev.Result["rule"].(string)
		if strings.HasPrefix(rule, "ssrf:") {
			denies++
			if ev.Result["allow"] != false || ev.Result["audit"] != nil {
				t.Errorf("SSRF deny logged as %v", ev.Result)
			}
		}
	}
	if denies != 3 {
		t.Errorf("%d SSRF denies logged, want 3", denies)
	}
}

// TestServeAuditPerAttempt: one attempt registered with "audit": true,
// another without, the same destination: audited allow and deny, counted
// as such in /metrics.
func TestServeAuditPerAttempt(t *testing.T) {
	need(t, "curl")
	up := newUpstream(t)
	d := startServe(t, "--allow-cidr", "127.0.0.0/8", "--resolve", "other.test:127.0.0.1")
	adm := newAdminClient(t, d.admin, "")
	var learn, enforce struct{ Result struct{ ID, Token string } }
	_ = json.Unmarshal([]byte(adm.want(t, "POST", "/v1/attempts", `{"id": "learn", "audit": true}`, 201)), &learn)
	_ = json.Unmarshal([]byte(adm.want(t, "POST", "/v1/attempts", `{"id": "enforce"}`, 201)), &enforce)
	url := "http://other.test:" + up.port() + "/"
	proxy := "http://" + d.http
	wantCurl(t, "200", "-x", proxy, "-U", learn.Result.ID+":"+learn.Result.Token, url)
	wantCurl(t, "403", "-x", proxy, "-U", enforce.Result.ID+":"+enforce.Result.Token, url)
	wantCurl(t, "200", "-x", "socks5h://"+learn.Result.ID+":"+learn.Result.Token+"@"+d.socks, url)

	if got := adm.want(t, "GET", "/v1/decisions?attempt_id=learn", "", 200); strings.Count(got, `"audit":true`) < 3 {
		t.Errorf("learn's decisions (the request, the SOCKS5 tunnel and the request inside) are not all audited: %s", got)
	}
	if status := adm.want(t, "GET", "/v1/status", "", 200); !strings.Contains(status, `"audit":false`) {
		t.Errorf("status of a serve not in audit mode: %s", status)
	}
	metrics := adm.want(t, "GET", "/metrics", "", 200)
	for _, m := range []string{
		`regate_decisions_total{reason_class="default",result="audit"} 3`,
		`regate_decisions_total{reason_class="default",result="deny"} 1`,
	} {
		if !strings.Contains(metrics, m+"\n") {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

// TestDecideAudit: `regate decide --audit` prints the audited allow and
// exits 0, as `run --audit` would let it through; without, it denies.
func TestDecideAudit(t *testing.T) {
	res := regate(t, nil, "decide", "--audit", "https://x.test")
	wantCode(t, res, 0)
	var out struct {
		Allow  bool
		Audit  bool
		Reason string
		Rule   string
	}
	if err := json.Unmarshal([]byte(res.stdout), &out); err != nil {
		t.Fatalf("%v: %s", err, res.stdout)
	}
	if !out.Allow || !out.Audit || out.Reason != "no rule allows x.test" || out.Rule != "default" {
		t.Errorf("decide --audit: %+v", out)
	}
	wantCode(t, regate(t, nil, "decide", "https://x.test"), 1)
}
