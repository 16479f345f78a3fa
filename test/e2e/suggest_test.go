package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// policiesDir is the default policy's source in this repository, which a
// policy repository would hold.
const policiesDir = "../../policies"

// curlScript requests http://HOST:port/ of every host, ignoring failures.
func curlScript(port string, hosts ...string) string {
	var b strings.Builder
	for _, h := range hosts {
		b.WriteString("curl -s -o /dev/null http://" + h + ":" + port + "/; ")
	}
	return b.String() + "true"
}

// resolveFlags pin every host to the loopback upstream.
func resolveFlags(hosts ...string) []string {
	out := []string{"--allow-cidr", "127.0.0.0/8"}
	for _, h := range hosts {
		out = append(out, "--resolve", h+":127.0.0.1")
	}
	return out
}

// TestSuggestThenRun: the suggestion from a run's decision log groups
// siblings (never under a public suffix), lets the same command run with
// nothing blocked, and its --test output passes regate test and the
// genuine opa test; a bad line is reported and changes nothing.
func TestSuggestThenRun(t *testing.T) {
	need(t, "curl", "sh")
	up := newUpstream(t)
	dir := t.TempDir()
	hosts := []string{"x.a.test", "y.a.test", "deep.z.a.test", "a.co.uk", "b.co.uk", "c.co.uk", "one.b.test"}
	script := curlScript(up.port(), hosts...)
	logPath := filepath.Join(dir, "d.jsonl")
	// Audit mode: everything goes through, and the log says what the
	// policy would have denied.
	res := regate(t, nil, append(append([]string{"run", "--audit", "--decision-log", logPath}, resolveFlags(hosts...)...), "--", "sh", "-c", script)...)
	wantCode(t, res, 0)
	if n := strings.Count(res.stderr, "regate: would have blocked"); n != len(hosts) || up.hits.Load() != int64(len(hosts)) || strings.Contains(res.stderr, "regate: blocked") {
		t.Fatalf("audited run: %d would have been blocked, %d reached, want %d and %d:\n%s", n, up.hits.Load(), len(hosts), len(hosts), res.stderr)
	}
	up.hits.Store(0)

	testFile := filepath.Join(dir, "suggested_test.rego")
	res = regate(t, nil, "suggest", "--test", testFile, logPath)
	wantCode(t, res, 0)
	allowYAML := res.stdout
	var patterns []string
	for _, line := range strings.Split(allowYAML, "\n") {
		if p, ok := strings.CutPrefix(line, "  - "); ok {
			patterns = append(patterns, strings.Trim(p, `"`))
		}
	}
	p := ":" + up.port()
	want := []string{"*.a.test" + p, "a.co.uk" + p, "b.co.uk" + p, "c.co.uk" + p, "one.b.test" + p}
	if !slices.Equal(patterns, want) {
		t.Errorf("suggested %q, want %q:\n%s", patterns, want, allowYAML)
	}
	if !strings.Contains(allowYAML, "# 3 connections to deep.z.a.test"+p+", x.a.test"+p+", y.a.test"+p) {
		t.Errorf("the grouped pattern's comment does not say where it came from:\n%s", allowYAML)
	}
	config := writeFile(t, dir, "allow.yaml", allowYAML)

	// A bad line is reported with its number and changes nothing.
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"decision_id": "broken", "input": {"host": "evil.test"` + "\n")
	_ = f.Close()
	again := regate(t, nil, "suggest", logPath)
	wantCode(t, again, 0)
	if again.stdout != allowYAML || !strings.Contains(again.stderr, "d.jsonl:"+strconv.Itoa(len(hosts)+1)+": ") {
		t.Errorf("with a bad line: stderr %s\nstdout %s", again.stderr, again.stdout)
	}

	res = regate(t, nil, append(append([]string{"run", "--config", config}, resolveFlags(hosts...)...), "--", "sh", "-c", script)...)
	wantCode(t, res, 0)
	if strings.Contains(res.stderr, "blocked") || up.hits.Load() != int64(len(hosts)) {
		t.Errorf("run with the suggestion: %d of %d reached:\n%s", up.hits.Load(), len(hosts), res.stderr)
	}

	// Only the suggested tests: the policy's own run in .opa-test.sh, and
	// take long under a race-detecting binary.
	res = regate(t, nil, "test", "--fail-on-empty", "-v", "-t", "60s", "-r", "suggested_test", policiesDir, testFile)
	wantCode(t, res, 0)
	if n := strings.Count(res.stdout, "data.regate.suggested_test.test_allowed_"); n != len(hosts) {
		t.Errorf("regate test ran %d suggested tests, want %d:\n%s", n, len(hosts), res.stdout)
	}
	out, err := exec.Command(genuineOPA(t), "test", "--fail-on-empty", "-r", "suggested_test", policiesDir, testFile).CombinedOutput()
	if err != nil {
		t.Errorf("opa test: %v\n%s", err, out)
	}
}

// TestSuggestKeepsDenied: the Rego module and the JSON data document,
// with --keep-denied, and their tests pass the genuine opa test; the kept
// host is not covered.
func TestSuggestKeepsDenied(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i, h := range []string{"x.a.test", "y.a.test", "z.a.test", "w.a.test"} {
		lines = append(lines, `{"decision_id":"d`+strconv.Itoa(i)+`","path":"regate/network/decision","input":{"host":"`+h+
			`","port":443,"scheme":"https","method":"CONNECT","attempt_id":"","host_is_ip":false,"attempt":{"labels":{},"allow":[],"deny":[]}},"result":{"allow":false,"rule":"default"}}`)
	}
	logPath := writeFile(t, dir, "d.jsonl", strings.Join(lines, "\n")+"\n")
	for format, file := range map[string]string{"rego": "allow.rego", "json": "data.json"} {
		out := filepath.Join(dir, format)
		testFile := filepath.Join(out, "suggested_test.rego")
		if err := os.MkdirAll(out, 0o755); err != nil {
			t.Fatal(err)
		}
		res := regate(t, nil, "suggest", "--format", format, "--keep-denied", "w.a.test", "--test", testFile, logPath)
		wantCode(t, res, 0)
		if strings.Contains(res.stdout, "*.a.test") || !strings.Contains(res.stdout, `"x.a.test"`) {
			t.Errorf("%s suggestion:\n%s", format, res.stdout)
		}
		writeFile(t, out, file, res.stdout)
		cmd := exec.Command(genuineOPA(t), "test", "-v", "--fail-on-empty", "-r", "suggested_test", policiesDir, out)
		if b, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(b), "test_denied_w_a_test_443: PASS") {
			t.Errorf("opa test of the %s suggestion: %v\n%s", format, err, b)
		}
	}
}

// TestReplay: a stricter policy's changes are listed exactly and exit 3;
// the same policy exits 0; events masked by a decision-log mask policy are
// not replayable.
func TestReplay(t *testing.T) {
	need(t, "curl", "sh")
	up := newUpstream(t)
	dir := t.TempDir()
	hosts := []string{"x.a.test", "y.a.test", "b.test", "c.test"}
	mask := writeFile(t, dir, "mask/mask.rego", "package system.log\n\nmask contains \"/input/attempt_id\" if input.input.host == \"b.test\"\n")
	logPath := filepath.Join(dir, "d.jsonl")
	allow := []string{"--allow", "**.a.test", "--allow", "b.test"}
	args := append([]string{"run", "--decision-log", logPath, "--policy", policiesDir, "--policy", filepath.Dir(mask)}, allow...)
	res := regate(t, nil, append(append(args, resolveFlags(hosts...)...), "--", "sh", "-c", curlScript(up.port(), hosts...))...)
	wantCode(t, res, 0)
	if up.hits.Load() != 3 {
		t.Fatalf("first run reached %d, want 3:\n%s", up.hits.Load(), res.stderr)
	}

	stricter := writeFile(t, dir, "stricter/policy.rego", `package regate.network

default decision := {"allow": false, "reason": "only x", "rule": "stricter"}

decision := {"allow": true, "reason": "x", "rule": "x"} if input.host == "x.a.test"
`)
	res = regate(t, nil, "replay", "--format", "json", "--policy", filepath.Dir(stricter), logPath)
	wantCode(t, res, 3)
	var r struct {
		Events, Replayed, Unchanged int
		Changes                     []struct{ Change, Host, Was_rule, Now_rule string }
		Not_replayable              map[string]int
	}
	if err := json.Unmarshal([]byte(res.stdout), &r); err != nil {
		t.Fatalf("report: %v\n%s", err, res.stdout)
	}
	if r.Events != 4 || r.Replayed != 3 || r.Unchanged != 2 || len(r.Changes) != 1 ||
		r.Changes[0].Change != "allow→deny" || r.Changes[0].Host != "y.a.test" || r.Changes[0].Now_rule != "stricter" {
		t.Errorf("report %+v", r)
	}
	if r.Not_replayable["input masked (/input/attempt_id)"] != 1 {
		t.Errorf("not replayable %v, want the masked b.test", r.Not_replayable)
	}

	res = regate(t, nil, "replay", "--fail-on", "allow", "--policy", filepath.Dir(stricter), logPath)
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, "allow→deny  y.a.test") || !strings.Contains(res.stdout, "not replayable: 1") {
		t.Errorf("text report:\n%s", res.stdout)
	}

	res = regate(t, nil, append([]string{"replay", logPath}, allow...)...)
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, "replayed 3 of 4 events: 0 changed") {
		t.Errorf("replay against the same policy:\n%s", res.stdout)
	}
}

// TestSuggestFromAdmin: a running serve's recent decisions, over its
// admin socket and over TCP with the token.
func TestSuggestFromAdmin(t *testing.T) {
	need(t, "curl")
	up := newUpstream(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	sock := startServe(t)
	tcp := startServe(t, "--admin", "127.0.0.1:0", "--admin-token-file", tokenFile)
	for _, d := range []*daemon{sock, tcp} {
		if got := curlStatus(t, "-x", "http://"+d.http, "http://denied.test:"+up.port()+"/"); got != "403" {
			t.Fatalf("denied.test through %s: %s", d.http, got)
		}
	}
	want := `- "denied.test:` + up.port() + `"`
	for _, src := range []string{"admin:" + sock.admin, "admin:" + strings.TrimPrefix(sock.admin, "unix:")} {
		res := regate(t, nil, "suggest", src)
		wantCode(t, res, 0)
		if !strings.Contains(res.stdout, want) {
			t.Errorf("suggest %s:\n%s%s", src, res.stdout, res.stderr)
		}
	}
	res := regate(t, nil, "suggest", "--admin-token-file", tokenFile, "admin:"+tcp.admin)
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, want) {
		t.Errorf("suggest over TCP:\n%s%s", res.stdout, res.stderr)
	}
	res = regate(t, nil, "suggest", "admin:"+tcp.admin)
	wantCode(t, res, 1)
	if !strings.Contains(res.stderr, "--admin-token-file") {
		t.Errorf("without a token: %s", res.stderr)
	}
}
