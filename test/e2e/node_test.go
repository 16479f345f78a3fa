package e2e

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// nodeReadsProxyEnv reports whether the installed node proxies fetch()
// and https.get() under NODE_USE_ENV_PROXY (22.21+ in the 22 line, 24.5+).
func nodeReadsProxyEnv(t *testing.T) (string, bool) {
	t.Helper()
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		t.Fatalf("node --version: %v", err)
	}
	v := strings.TrimSpace(string(out))
	parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
	major, _ := strconv.Atoi(parts[0])
	minor, _ := strconv.Atoi(parts[1])
	return v, major > 24 || major == 24 && minor >= 5 || major == 22 && minor >= 21
}

// Without --isolate, a Node.js command whose fetch() and https.get()
// ignore the proxy variables gets one warning naming --isolate and
// undici's EnvHttpProxyAgent: node itself, npm and npx, and a script whose
// #! line names node. Other commands, and --isolate (whose transparent
// path decides those connections), get none.
func TestRunWarnsAboutNode(t *testing.T) {
	need(t, "node", "npm", "npx", "sh")
	version, covered := nodeReadsProxyEnv(t)
	dir := t.TempDir()
	script := writeFile(t, dir, "tool.js", "#!/usr/bin/env node\nconsole.log('tool ran')\n")
	if err := exec.Command("chmod", "+x", script).Run(); err != nil {
		t.Fatal(err)
	}
	home := []string{"HOME=" + dir, "npm_config_update_notifier=false"}
	for _, tc := range []struct {
		name string
		argv []string
		warn bool
	}{
		{"node", []string{"node", "-e", "console.log('node ran')"}, true},
		{"npm", []string{"npm", "--version"}, true},
		{"npx", []string{"npx", "--version"}, true},
		{"node script", []string{script}, true},
		{"sh", []string{"sh", "-c", "echo sh ran"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := regate(t, home, append([]string{"run", "--"}, tc.argv...)...)
			wantCode(t, res, 0)
			n := strings.Count(res.stderr, "regate: warning: Node.js "+version+" ignores the proxy variables")
			want := 0
			if tc.warn && !covered {
				want = 1
			}
			if n != want {
				t.Fatalf("%d warnings, want %d:\n%s", n, want, res.stderr)
			}
			if want == 1 && (!strings.Contains(res.stderr, "--isolate") || !strings.Contains(res.stderr, "EnvHttpProxyAgent")) {
				t.Errorf("the warning names neither --isolate nor EnvHttpProxyAgent:\n%s", res.stderr)
			}
		})
	}
	t.Run("isolate", func(t *testing.T) {
		needIsolation(t)
		res := regate(t, home, "run", "--isolate", "--", "node", "-e", "0")
		wantCode(t, res, 0)
		if strings.Contains(res.stderr, "warning: Node.js") {
			t.Errorf("warned under --isolate:\n%s", res.stderr)
		}
	})
}
