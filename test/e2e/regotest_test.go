package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

func regoFixtures(t *testing.T) (good, failing, broken string) {
	t.Helper()
	dir := t.TempDir()
	policy := "package p\n\nallow if input.x == 1\n"
	good = dir + "/good"
	writeFile(t, good, "p.rego", policy)
	writeFile(t, good, "p_test.rego", "package p_test\n\nimport data.p\n\ntest_allow if p.allow with input as {\"x\": 1}\n\ntest_deny if not p.allow with input as {\"x\": 2}\n")
	failing = dir + "/failing"
	writeFile(t, failing, "p.rego", policy)
	writeFile(t, failing, "p_test.rego", "package p_test\n\nimport data.p\n\ntest_ok if p.allow with input as {\"x\": 1}\n\ntest_wrong if p.allow with input as {\"x\": 2}\n")
	broken = dir + "/broken"
	writeFile(t, broken, "p.rego", "package p\n\nallow if {\n")
	return good, failing, broken
}

func TestRegoTest(t *testing.T) {
	good, failing, broken := regoFixtures(t)
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
	}{
		{name: "embedded default", code: 0, stdout: "PASS: "},
		{name: "good", args: []string{good}, code: 0, stdout: "PASS: 2/2"},
		{name: "verbose", args: []string{"-v", good}, code: 0, stdout: "data.p_test.test_allow: PASS"},
		{name: "failing", args: []string{failing}, code: 2, stdout: "data.p_test.test_wrong: FAIL"},
		{name: "run filter", args: []string{"--run", "test_ok", failing}, code: 0, stdout: "PASS: 1/1"},
		{name: "fail on empty", args: []string{"--run", "nothing", "--fail-on-empty", good}, code: 1, stderr: "no tests were run"},
		{name: "parse error", args: []string{broken}, code: 1, stderr: "p.rego:"},
		{name: "missing path", args: []string{good + "/nope"}, code: 1, stderr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := regate(t, nil, append([]string{"test"}, tt.args...)...)
			wantCode(t, res, tt.code)
			if !strings.Contains(res.stdout, tt.stdout) || !strings.Contains(res.stderr, tt.stderr) {
				t.Errorf("want stdout ∋ %q, stderr ∋ %q\nstdout: %s\nstderr: %s", tt.stdout, tt.stderr, res.stdout, res.stderr)
			}
		})
	}
}

func TestRegoTestJSON(t *testing.T) {
	_, failing, _ := regoFixtures(t)
	res := regate(t, nil, "test", "--format", "json", failing)
	wantCode(t, res, 2)
	var results []struct {
		Name string `json:"name"`
		Fail bool   `json:"fail"`
	}
	if err := json.Unmarshal([]byte(res.stdout), &results); err != nil {
		t.Fatalf("JSON output: %v\n%s", err, res.stdout)
	}
	failed := map[string]bool{}
	for _, r := range results {
		failed[r.Name] = r.Fail
	}
	if len(failed) != 2 || failed["test_ok"] || !failed["test_wrong"] {
		t.Errorf("results = %+v", results)
	}
}

func TestVersion(t *testing.T) {
	res := regate(t, nil, "version")
	wantCode(t, res, 0)
	for _, re := range []string{`(?m)^regate \S+$`, `(?m)^opa \d+\.\d+\.\d+$`, `(?m)^go go1\.\d+`, `(?m)^default policy sha256:[0-9a-f]{16} \(\d+ files\)$`} {
		if !regexp.MustCompile(re).MatchString(res.stdout) {
			t.Errorf("version output does not match %s:\n%s", re, res.stdout)
		}
	}
}
