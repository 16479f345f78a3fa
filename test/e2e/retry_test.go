package e2e

import (
	"regexp"
	"strings"
	"testing"
)

// pip and yarn 1 retry a refused tunnel (pip: urllib3 retries every error
// of a tunnel's set-up, 5 times with back-off; yarn 1: tunnel-agent turns
// any refused CONNECT into ECONNRESET, which yarn takes for a lost network
// and retries 4 times), whatever the proxy answers short of a tunnel. The
// summary says so, so that 6 blocked connections read as one refusal.
func TestRunSummarySaysTheClientRetried(t *testing.T) {
	retried := regexp.MustCompile(`regate: blocked ([0-9]+) connections \(the client retried\) to blocked\.test:443 — no rule allows blocked\.test\n`)
	check := func(t *testing.T, res result) {
		t.Helper()
		if res.code == 0 {
			t.Errorf("the client succeeded against a blocked registry:\n%s", res.stderr)
		}
		m := retried.FindStringSubmatch(res.stderr)
		if m == nil {
			t.Fatalf("stderr lacks %s:\n%s", retried, res.stderr)
		}
		t.Logf("%s connections", m[1])
	}
	t.Run("pip", func(t *testing.T) {
		needPython(t, "pip")
		dir := t.TempDir()
		res := regate(t, []string{"HOME=" + dir}, "run", "--", debianPython, "-m", "pip", "download", "--no-deps", "--no-cache-dir",
			"--disable-pip-version-check", "-d", dir, "--index-url", "https://blocked.test/simple/", "demo")
		check(t, res)
		if !strings.Contains(res.stderr, "Tunnel connection failed: 403") {
			t.Errorf("pip did not see the 403:\n%s", res.stderr)
		}
	})
	t.Run("yarn 1", func(t *testing.T) {
		need(t, "yarn")
		dir := t.TempDir()
		writeFile(t, dir, "package.json", `{"name": "p", "version": "1.0.0", "license": "MIT"}`)
		res := regate(t, []string{"HOME=" + dir}, "run", "--", "sh", "-c",
			`cd "$1" && yarn add left-pad --registry https://blocked.test/ --non-interactive --no-lockfile`, "sh", dir)
		check(t, res)
		if !strings.Contains(res.stdout+res.stderr, "tunneling socket could not be established, statusCode=403") {
			t.Errorf("yarn did not see the 403:\n%s%s", res.stdout, res.stderr)
		}
	})
}
