package engine

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func allowPolicy(host string) string {
	return "package regate.network\n\ndefault decision := {\"allow\": false, \"reason\": \"no\"}\n\n" +
		"decision := {\"allow\": true, \"reason\": \"yes\"} if input.host == \"" + host + "\"\n"
}

const brokenPolicy = "package regate.network\n\ndecision := {\"allow\": true\n"

func writeFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// saveByRename writes like editors that save atomically: a temp file renamed
// over the original.
func saveByRename(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp~"
	writeFile(t, tmp, body)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func decideHost(t *testing.T, e *Engine, host string) Decision {
	t.Helper()
	d, err := e.Decide(context.Background(), Input{Host: host, Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect})
	if err != nil {
		t.Fatalf("Decide(%s): %v", host, err)
	}
	return d
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadUnderLoad swaps valid → broken → valid while decisions run
// concurrently: no decision errors, no fail-closed reason from a half-loaded
// policy, and each decision matches one of the two valid policies.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.rego")
	writeFile(t, path, allowPolicy("a.test"))
	e := startEngine(t, Config{Policies: []string{path}, Watch: true, Debounce: 20 * time.Millisecond,
		DecisionTimeout: 10 * time.Second}) // a timeout would be neither policy's; this test is about reloads

	var stop atomic.Bool
	var wg sync.WaitGroup
	var bad atomic.Int64
	var firstBad atomic.Value
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				d, err := e.Decide(context.Background(), Input{Host: "a.test", Port: 443})
				if err != nil || (d.Reason != "yes" && d.Reason != "no") {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, d.Reason)
				}
			}
		}()
	}
	saveByRename(t, path, brokenPolicy)
	waitFor(t, "the broken policy to be refused", func() bool { return e.Status().ReloadFailures > 0 })
	if !decideHost(t, e, "a.test").Allow {
		t.Fatal("the last good policy stopped deciding after a broken save")
	}
	if msg := e.Status().LastError; !strings.Contains(msg, "policy.rego:") {
		t.Fatalf("status error %q does not name file and line", msg)
	}
	saveByRename(t, path, allowPolicy("b.test"))
	waitFor(t, "the new policy", func() bool { return decideHost(t, e, "b.test").Allow })
	stop.Store(true)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d decisions were neither policy's (first: %v)", n, firstBad.Load())
	}
	if decideHost(t, e, "a.test").Allow {
		t.Fatal("old policy still deciding")
	}
	if e.Status().LastError != "" {
		t.Fatalf("error not cleared after a good reload: %s", e.Status().LastError)
	}
}

// TestReloadConfigMapSwap mimics a Kubernetes ConfigMap volume: files are
// symlinks through `..data`, which is swapped atomically to a new hidden
// directory.
func TestReloadConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "..2026_01", "policy.rego"), allowPolicy("a.test"))
	must(t, os.Symlink("..2026_01", filepath.Join(dir, "..data")))
	must(t, os.Symlink("..data/policy.rego", filepath.Join(dir, "policy.rego")))
	e := startEngine(t, Config{Policies: []string{dir}, Watch: true, Debounce: 20 * time.Millisecond})
	if !decideHost(t, e, "a.test").Allow {
		t.Fatal("initial ConfigMap policy not loaded")
	}
	writeFile(t, filepath.Join(dir, "..2026_02", "policy.rego"), allowPolicy("b.test"))
	must(t, os.Symlink("..2026_02", filepath.Join(dir, "..data_tmp")))
	must(t, os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")))
	must(t, os.RemoveAll(filepath.Join(dir, "..2026_01")))
	waitFor(t, "the swapped ConfigMap policy", func() bool { return decideHost(t, e, "b.test").Allow })
}

// TestReloadKeepsLastGoodOnExplicitReload: Reload (SIGHUP, admin API)
// returns the error and keeps deciding.
func TestReloadKeepsLastGoodOnExplicitReload(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.rego")
	writeFile(t, path, allowPolicy("a.test"))
	e := startEngine(t, Config{Policies: []string{path}})
	writeFile(t, path, brokenPolicy)
	if err := e.Reload(context.Background()); err == nil {
		t.Fatal("Reload accepted a broken policy")
	}
	if !decideHost(t, e, "a.test").Allow {
		t.Fatal("last good policy lost")
	}
	must(t, os.Remove(path))
	if err := e.Reload(context.Background()); err == nil {
		t.Fatal("Reload accepted a missing policy file")
	}
	if !decideHost(t, e, "a.test").Allow {
		t.Fatal("last good policy lost after the file vanished")
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
