package e2e

import (
	"strings"
	"testing"
)

func TestCheckExampleConfig(t *testing.T) {
	res := regate(t, nil, "check", "--config", "../../regate.example.yaml")
	wantCode(t, res, 0)
	for _, want := range []string{"configuration: ok (../../regate.example.yaml)", "policy: ok, compiled (embedded default", "listeners: http 127.0.0.1:3128"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, res.stdout)
		}
	}
}

func TestCheckReportsEveryProblem(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "regate.yaml", `allwo: [github.com]
allow: ["git hub.com"]
allow_cidrs: [10.0.0.0/33]
proxy:
  max_tunels: 5
`)
	res := regate(t, nil, "check", "--config", cfg)
	wantCode(t, res, 1)
	for _, want := range []string{`unknown key "allwo"`, `unknown key "proxy.max_tunels"`, `allow[0]: pattern "git hub.com"`, `allow_cidrs[0]: invalid CIDR "10.0.0.0/33"`} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
}

func TestCheckPolicyError(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "policy/ok.rego", "package regate.network\n\ndecision := {\"allow\": false}\n")
	writeFile(t, dir, "policy/bad.rego", "package regate.network\n\nx := y\n")
	res := regate(t, nil, "check", "--policy", dir+"/policy")
	wantCode(t, res, 1)
	if !strings.Contains(res.stderr, "bad.rego:3") {
		t.Errorf("stderr does not name bad.rego:3:\n%s", res.stderr)
	}
}

func TestCheckRefusesNonLoopbackListener(t *testing.T) {
	res := regate(t, nil, "check", "--http", "0.0.0.0:3128")
	wantCode(t, res, 1)
	if !strings.Contains(res.stderr, `http: "0.0.0.0:3128" is not a loopback address`) {
		t.Errorf("stderr:\n%s", res.stderr)
	}
	wantCode(t, regate(t, nil, "check", "--http", "0.0.0.0:3128", "--listen-any"), 0)
}

// Precedence, lowest first: file, REGATE_* environment, flags. `decide`
// shows which allow list won.
func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	yaml := writeFile(t, dir, "regate.yaml", "allow: [file.test]\n")
	toml := writeFile(t, dir, "regate.toml", "allow = [\"file.test\"]\n")
	json := writeFile(t, dir, "regate.json", `{"allow": ["file.test"]}`)
	tests := []struct {
		name    string
		env     []string
		flags   []string
		allowed string
		denied  []string
	}{
		{name: "yaml file", flags: []string{"--config", yaml}, allowed: "file.test"},
		{name: "toml file", flags: []string{"--config", toml}, allowed: "file.test"},
		{name: "json file", flags: []string{"--config", json}, allowed: "file.test"},
		{name: "config from env", env: []string{"REGATE_CONFIG=" + yaml}, allowed: "file.test"},
		{name: "env over file", env: []string{"REGATE_ALLOW=env.test,other.test"}, flags: []string{"--config", yaml},
			allowed: "env.test", denied: []string{"file.test"}},
		{name: "flag over env and file", env: []string{"REGATE_ALLOW=env.test"}, flags: []string{"--config", yaml, "--allow", "flag.test"},
			allowed: "flag.test", denied: []string{"file.test", "env.test"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := regate(t, tt.env, append(append([]string{"decide"}, tt.flags...), tt.allowed+":443")...)
			wantCode(t, res, 0)
			for _, host := range tt.denied {
				wantCode(t, regate(t, tt.env, append(append([]string{"decide"}, tt.flags...), host+":443")...), 1)
			}
		})
	}
}

func TestConfigEnvErrorNamesVariable(t *testing.T) {
	res := regate(t, []string{"REGATE_DECISION_TIMEOUT=soon"}, "check")
	wantCode(t, res, 1)
	if !strings.Contains(res.stderr, `decision_timeout: "soon" is not a duration`) || !strings.Contains(res.stderr, "$REGATE_DECISION_TIMEOUT") {
		t.Errorf("stderr:\n%s", res.stderr)
	}
}
