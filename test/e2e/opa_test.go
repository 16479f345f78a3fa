package e2e

import (
	"context"
	"fmt"
	"github.com/regate/regate/internal/enginetest"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The genuine `opa`, of the version go.mod requires, built once per test
// binary from the module cache into the cache directory .opa-test.sh uses
// (and reused from there), for the side-by-side tests.
var (
	opaOnce sync.Once
	opaBin  string
	opaErr  error
)

// genuineOPA returns the path of the genuine opa binary; it fails the test
// when it cannot be built (never skips).
func genuineOPA(t *testing.T) string {
	t.Helper()
	opaOnce.Do(func() { opaBin, opaErr = buildOPA() })
	if opaErr != nil {
		t.Fatalf("building the genuine opa: %v", opaErr)
	}
	return opaBin
}

func buildOPA() (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/open-policy-agent/opa").Output()
	if err != nil {
		return "", fmt.Errorf("reading the OPA version from go.mod: %w", err)
	}
	version := strings.TrimSpace(string(out))
	cache := os.Getenv("XDG_CACHE_HOME")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache")
	}
	dir := filepath.Join(cache, "regate", "opa-"+version)
	bin := filepath.Join(dir, "opa")
	if opaVersion(bin) == version {
		return bin, nil
	}
	tmp, err := os.MkdirTemp("", "regate-opa-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	install := exec.Command("go", "install", "github.com/open-policy-agent/opa@"+version)
	// The caller's environment (GOPROXY, a proxy to reach it); GOFLAGS may
	// carry -mod=..., which `go install pkg@version` rejects.
	install.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=")
	install.Dir = tmp
	if b, err := install.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install opa@%s: %w\n%s", version, err, b)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Rename(filepath.Join(tmp, "opa"), bin); err != nil {
		return "", err
	}
	if got := opaVersion(bin); got != version {
		return "", fmt.Errorf("built opa reports version %q, want %s", got, version)
	}
	return bin, nil
}

// opaVersion is the version bin reports ("v1.22.3"), "" when it cannot run.
func opaVersion(bin string) string {
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		return ""
	}
	for line := range strings.SplitSeq(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "Version: "); ok {
			return "v" + strings.TrimSpace(v)
		}
	}
	return ""
}

// opaServer is a running `opa run --server` on a unix socket.
type opaServer struct {
	admin  *adminClient
	stderr *enginetest.SyncBuffer
}

// startOPA runs the genuine `opa run --server` with configFile, on a unix
// socket, until the test ends.
func startOPA(t *testing.T, configFile string) *opaServer {
	t.Helper()
	sock := filepath.Join(shortDir(t), "opa.sock")
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, genuineOPA(t), "run", "--server", "--addr", "unix://"+sock,
		"--log-format", "json", "--log-level", "info", "--config-file", configFile)
	cmd.Env = cleanEnv()
	o := &opaServer{stderr: &enginetest.SyncBuffer{}}
	cmd.Stdout, cmd.Stderr = o.stderr, o.stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	o.admin = newAdminClient(t, "unix:"+sock, "")
	waitUntil(t, "opa to serve", func() bool {
		// The socket file may exist before opa accepts on it: until then a
		// refused connection means "not yet", not a failure.
		req, err := http.NewRequestWithContext(t.Context(), "GET", o.admin.base+"/health", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := o.admin.c.Do(req)
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return o
}

// shortDir is a temporary directory with a short path (unix socket paths
// are limited to about 100 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

// lineContaining is the first line of text that contains s, "" when none.
func lineContaining(text, s string) string {
	for line := range strings.SplitSeq(text, "\n") {
		if strings.Contains(line, s) {
			return line
		}
	}
	return ""
}

// waitFor is waitUntil with a deadline that suits a slow, shared machine
// under -race: it bounds a hang, it measures nothing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
