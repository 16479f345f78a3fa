package childenv

import (
	"github.com/regate/regate/internal/testenv"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestEnv(t *testing.T) {
	env := Env([]Listener{{HTTP, "127.0.0.1:4000"}, {SOCKS5, "127.0.0.1:4001"}}, "att", "tok", "/opt/my tools/regate")
	got := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		if _, dup := got[k]; dup {
			t.Errorf("%s set twice", k)
		}
		got[k] = v
	}
	want := map[string]string{
		"HTTP_PROXY":         "http://att:tok@127.0.0.1:4000",
		"https_proxy":        "http://att:tok@127.0.0.1:4000",
		"ALL_PROXY":          "http://att:tok@127.0.0.1:4000",
		"all_proxy":          "http://att:tok@127.0.0.1:4000",
		"REGATE_SOCKS_PROXY": "socks5h://att:tok@127.0.0.1:4001",
		"NO_PROXY":           "",
		"no_proxy":           "",
		"PIP_PROXY":          "http://att:tok@127.0.0.1:4000",
		"NODE_USE_ENV_PROXY": "1",
		"REGATE_ATTEMPT_ID":  "att",
		"JAVA_TOOL_OPTIONS":  "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=4000 -Dhttps.proxyHost=127.0.0.1 -Dhttps.proxyPort=4000 -Dhttp.nonProxyHosts=",
		"GIT_SSH_COMMAND":    `ssh -o 'ProxyCommand='\''/opt/my tools/regate'\'' connect %h %p'`,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range []string{"npm_config_proxy", "npm_config_https_proxy", "YARN_HTTP_PROXY", "YARN_HTTPS_PROXY",
		"BUNDLE_HTTP_PROXY", "BUNDLE_HTTPS_PROXY", "DOCKER_HTTP_PROXY", "DOCKER_HTTPS_PROXY", "HTTPS_PROXY", "http_proxy"} {
		if got[k] != want["HTTP_PROXY"] {
			t.Errorf("%s = %q, want the HTTP proxy URL", k, got[k])
		}
	}
}

func TestEnvWithoutSOCKSOrSelf(t *testing.T) {
	env := Env([]Listener{{HTTP, "127.0.0.1:4000"}}, "att", "tok", "")
	for _, kv := range env {
		if strings.HasPrefix(kv, "REGATE_SOCKS_PROXY=") || strings.HasPrefix(kv, "GIT_SSH_COMMAND=") {
			t.Errorf("unexpected %s", kv)
		}
	}
}

// The ProxyCommand survives two rounds of shell parsing (the shell git runs
// GIT_SSH_COMMAND with, then ssh's `sh -c "exec …"`).
func TestGitSSHCommandQuoting(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		testenv.Skip(t, "no sh")
	}
	self := "/tmp/it's here/regate"
	var cmd string
	for _, kv := range Env([]Listener{{HTTP, "127.0.0.1:1"}}, "a", "t", self) {
		if v, ok := strings.CutPrefix(kv, "GIT_SSH_COMMAND="); ok {
			cmd = v
		}
	}
	// Replace ssh by printf to see the argument ssh would get.
	out, err := exec.Command("sh", "-c", "printf '%s\\n' "+strings.TrimPrefix(cmd, "ssh ")).Output()
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 || lines[0] != "-o" || !strings.HasPrefix(lines[1], "ProxyCommand=") {
		t.Fatalf("ssh arguments = %q", lines)
	}
	pc := strings.TrimPrefix(lines[1], "ProxyCommand=")
	out, err = exec.Command("sh", "-c", "printf '%s\\n' "+pc).Output()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{self, "connect", "%h", "%p"}
	if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !slices.Equal(got, want) {
		t.Errorf("ProxyCommand words = %q, want %q", got, want)
	}
}

func TestMerge(t *testing.T) {
	base := []string{"PATH=/bin", "HTTP_PROXY=http://old", "JAVA_TOOL_OPTIONS=-Xmx1g", "PATH=/usr/bin"}
	got := Merge(base, []string{"HTTP_PROXY=http://new", "JAVA_TOOL_OPTIONS=-Dx=1", "NO_PROXY="})
	want := []string{"PATH=/usr/bin", "HTTP_PROXY=http://new", "JAVA_TOOL_OPTIONS=-Xmx1g -Dx=1", "NO_PROXY="}
	if !slices.Equal(got, want) {
		t.Errorf("Merge = %q, want %q", got, want)
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/usr/bin/regate": "/usr/bin/regate",
		"a b":             "'a b'",
		"it's":            `'it'\''s'`,
		"":                "''",
	} {
		if got := ShellQuote(in); got != want {
			t.Errorf("ShellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestGitSSHCommandKeepsTheUsers(t *testing.T) {
	pc := ` -o 'ProxyCommand=/usr/bin/regate connect %h %p'`
	for _, tc := range []struct{ user, want string }{
		{"", "ssh" + pc},
		{"  ", "ssh" + pc},
		{"ssh -i ~/.ssh/deploy -o UserKnownHostsFile=/etc/kh", "ssh -i ~/.ssh/deploy -o UserKnownHostsFile=/etc/kh" + pc},
		{"'/opt/my ssh/ssh' -F cfg", "'/opt/my ssh/ssh' -F cfg" + pc},
	} {
		if got := GitSSHCommand(tc.user, "/usr/bin/regate"); got != tc.want {
			t.Errorf("GitSSHCommand(%q) = %q, want %q", tc.user, got, tc.want)
		}
	}
}

func TestHasOwnProxy(t *testing.T) {
	for cmd, want := range map[string]bool{
		"ssh -i key":                       false,
		"ssh -o ProxyCommand='nc %h %p'":   true,
		"ssh -oproxyjump=bastion":          true,
		"ssh -J bastion":                   true,
		"ssh -vJ bastion":                  true,
		"ssh -i ~/.ssh/Jkey -F /dev/null":  false,
		"ssh -o IdentitiesOnly=yes -p 222": false,
	} {
		if got := HasOwnProxy(cmd); got != want {
			t.Errorf("HasOwnProxy(%q) = %v, want %v", cmd, got, want)
		}
	}
}
