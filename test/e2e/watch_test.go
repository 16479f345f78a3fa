package e2e

import (
	"strings"
	"testing"
)

// TestRunDoesNotWatchWhatTheCommandCanWrite: the command of `regate run`
// rewriting its own policy changes nothing, unless --watch asks for it
// (with a warning).
func TestRunDoesNotWatchWhatTheCommandCanWrite(t *testing.T) {
	need(t, "curl", "sh")
	up := newUpstream(t)
	dir := t.TempDir()
	policy := writeFile(t, dir, "p.rego", "package regate.network\n\ndecision := {\"allow\": false, \"reason\": \"locked down\"}\n")
	script := `cat > ` + policy + ` <<'REGO'
package regate.network

decision := {"allow": true, "reason": "the command wrote this"}
REGO
sleep 1
curl -s -o /dev/null -w '%{http_code}\n' http://allowed.test:` + up.port() + `/`
	args := []string{"run", "--policy", dir, "--allow-cidr", "127.0.0.0/8", "--resolve", "allowed.test:127.0.0.1"}
	res := regate(t, nil, append(args, "--", "sh", "-c", script)...)
	wantCode(t, res, 0)
	if strings.TrimSpace(res.stdout) != "403" || up.hits.Load() != 0 {
		t.Errorf("the command's rewrite of its policy took effect: %q, %d upstream hits", res.stdout, up.hits.Load())
	}
	if strings.Contains(res.stderr, "--watch") {
		t.Errorf("warning without --watch:\n%s", res.stderr)
	}
	watched := regate(t, nil, append(append(args, "--watch"), "--", "true")...)
	wantCode(t, watched, 0)
	if !strings.Contains(watched.stderr, "regate: warning: --watch reloads the policy files when they change, and the command can write them") {
		t.Errorf("no warning with --watch:\n%s", watched.stderr)
	}
}
