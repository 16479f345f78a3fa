// Package testenv is how a test says it cannot run here: on a developer's
// machine that lacks a tool, a privilege or a kernel feature it skips, but
// where CI is set (.ci/run sets it) the same condition fails the test, so
// that nothing is skipped in CI.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// InCI reports whether the tests run in CI.
func InCI() bool { return os.Getenv("CI") != "" }

// Skip skips t with the reason, or fails it in CI.
func Skip(t testing.TB, format string, args ...any) {
	t.Helper()
	why := fmt.Sprintf(format, args...)
	if InCI() {
		t.Fatalf("cannot run in CI, which must provide it: %s", why)
	}
	t.Skip(why)
}
