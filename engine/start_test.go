package engine

import (
	"context"
	"errors"
	"github.com/regate/regate/internal/testenv"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// Goroutines a failed Start must not leave behind, by the function they run.
var startGoroutines = []string{
	"regate/engine.(*pipeline).run",
	"regate/engine.(*watcher).run",
	"opa/v1/plugins.(*Manager).pluginStatusLoop",
	"opa/v1/plugins/logs.(*Plugin).loop",
}

// goroutinesIn counts the goroutines whose stack has a frame in each of fns.
func goroutinesIn(fns []string) map[string]int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	counts := map[string]int{}
	for _, g := range strings.Split(string(buf), "\n\n") {
		for _, fn := range fns {
			if strings.Contains(g, fn+"(") {
				counts[fn]++
			}
		}
	}
	return counts
}

// waitGoroutinesBack waits, up to a bound, until no more goroutines run each
// of fns than before; the stack of every one left over is in the failure.
func waitGoroutinesBack(t *testing.T, before map[string]int, fns []string) {
	t.Helper()
	var now map[string]int
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		now = goroutinesIn(fns)
		if !slices.ContainsFunc(fns, func(fn string) bool { return now[fn] > before[fn] }) {
			return
		}
	}
	for _, fn := range slices.Sorted(maps.Keys(now)) {
		if now[fn] > before[fn] {
			t.Errorf("%d goroutines in %s left running (%d before Start)", now[fn], fn, before[fn])
		}
	}
}

// stopReturns calls Stop, which a failed Start leaves nothing to do, and
// fails the test if it does not return.
func stopReturns(t *testing.T, e *Engine) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.Stop(ctx)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop after a failed Start does not return")
	}
}

// inDeletedDir makes the working directory one that no longer exists: OPA's
// bundle and discovery plugins fail to start there, resolving their default
// persistence directory ($PWD/.opa).
func inDeletedDir(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	t.Chdir(dir)
	must(t, os.Remove(dir))
	if _, err := os.Getwd(); err == nil {
		testenv.Skip(t, "the working directory survives its removal here")
	}
}

// TestFailedStartLeavesNothingRunning fails Start at each step that can
// fail once something runs: OPA's manager runs from the first step, OPA's
// plugins from the second last, the decision-log pipeline from the last.
func TestFailedStartLeavesNothingRunning(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.rego")
	must(t, os.WriteFile(broken, []byte("package regate.network\n\ndecision := {\n"), 0o644))
	good := filepath.Join(t.TempDir(), "network.rego")
	must(t, os.WriteFile(good, []byte(simplePolicy), 0o644))
	tests := []struct {
		name    string
		cfg     Config
		prepare func(*testing.T, *Engine)
		err     string
	}{
		{"policy does not compile", Config{Policies: []string{broken}}, nil, "reloading policy"},
		{"OPA plugin does not start", Config{Default: simpleFS(simplePolicy)},
			func(t *testing.T, _ *Engine) { inDeletedDir(t) }, "starting OPA plugins"},
		{"watcher does not start", Config{Policies: []string{good}, Watch: true},
			func(_ *testing.T, e *Engine) {
				e.newWatcher = func([]string, time.Duration, *slog.Logger, func()) (*watcher, error) {
					return nil, errors.New("too many open files")
				}
			}, "watching policy sources"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := goroutinesIn(startGoroutines)
			e, err := New(tc.cfg)
			must(t, err)
			if tc.prepare != nil {
				tc.prepare(t, e)
			}
			if err := e.Start(context.Background()); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("Start = %v, want an error %q", err, tc.err)
			}
			waitGoroutinesBack(t, before, startGoroutines)
			stopReturns(t, e)
		})
	}
}

// TestFailedStartBoundedByStuckPlugin: when OPA's bundle plugin fails to
// start, OPA's decision-log plugin after it never starts, and stopping it
// waits forever; Start still returns, after abortTimeout, with the
// decision-log pipeline never started. The stuck stop stays behind for the
// rest of the test binary (the leak checks above count against before).
func TestFailedStartBoundedByStuckPlugin(t *testing.T) {
	opa := []byte(`{"services": {"s": {"url": "http://127.0.0.1:1"}}, "bundles": {"b": {"service": "s", "resource": "b.tar.gz"}}}`)
	e, err := New(Config{Default: simpleFS(simplePolicy), OPA: opa})
	must(t, err)
	e.abortTimeout = 50 * time.Millisecond
	inDeletedDir(t)
	done := make(chan error, 1)
	go func() { done <- e.Start(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "starting OPA plugins") {
			t.Fatalf("Start = %v, want an error starting OPA plugins", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Start does not return while an OPA plugin will not stop")
	}
	if e.logs.running.Load() {
		t.Fatal("decision-log pipeline running after a failed Start")
	}
	stopReturns(t, e)
}
