package e2e

import (
	"strings"
	"testing"
)

// TestRunWarnsWhenDecisionLogFails: a decision log that cannot be written
// (a full disk: /dev/full) is said on standard error, not silently lost.
func TestRunWarnsWhenDecisionLogFails(t *testing.T) {
	need(t, "curl")
	res := regate(t, nil, "run", "--decision-log", "/dev/full", "--", "curl", "-s", "-o", "/dev/null", "http://blocked.test/")
	wantCode(t, res, 0)
	if !strings.Contains(res.stderr, "writing the decision log failed") || !strings.Contains(res.stderr, "no space left on device") {
		t.Errorf("no warning about the failing decision log:\n%s", res.stderr)
	}
}
