// Package e2e runs the built regate binary against local servers: no
// network, real sockets on 127.0.0.1:0, real child processes.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"github.com/regate/regate/internal/testenv"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// regateBin is the binary under test, built once by TestMain.
var regateBin string

// runtimeRoot holds one XDG_RUNTIME_DIR per regate invocation, so that
// serve's default admin socket never collides between tests nor touches
// the user's own.
var (
	runtimeRoot string
	runtimeN    atomic.Int64
	probeBin    string // test/e2e/probe, built by TestMain
)

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "regate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	_ = os.Chmod(dir, 0o755) // the probe runs as another user too (--isolate-user)
	regateBin = filepath.Join(dir, "regate")
	runtimeRoot = filepath.Join(dir, "run")
	args := []string{"build", "-o", regateBin}
	if raceEnabled {
		args = append(args, "-race") // shares the build cache with the -race unit tests
	}
	build := exec.Command("go", append(args, "github.com/regate/regate/cmd/regate")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building regate:", err)
		return 1
	}
	probeBin = filepath.Join(dir, "probe")
	build = exec.Command("go", "build", "-o", probeBin, "github.com/regate/regate/test/e2e/probe")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the probe:", err)
		return 1
	}
	return m.Run()
}

// result is how a regate invocation ended.
type result struct {
	code           int
	stdout, stderr string
}

// cleanEnv is the test's environment without REGATE_* and proxy variables,
// so that the machine running the tests cannot change their outcome.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "REGATE_") || strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// regateCmd prepares a regate invocation with a clean environment.
func regateCmd(ctx context.Context, env []string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, regateBin, args...)
	xdg := filepath.Join(runtimeRoot, strconv.FormatInt(runtimeN.Add(1), 10))
	_ = os.MkdirAll(xdg, 0o700)
	// A -race binary sleeps a second at exit unless told not to; a race it
	// finds still fails the test (exit status 66).
	// The race-detecting binary on a loaded 2-core machine can take more
	// than the default 100 ms for one evaluation, which denies (fail
	// closed; the engine's tests cover it): these tests are about what is
	// decided, so they allow 5 s. A test's own env comes later and wins.
	cmd.Env = cleanEnv(append([]string{"GORACE=atexit_sleep_ms=0", "XDG_RUNTIME_DIR=" + xdg, "REGATE_DECISION_TIMEOUT=5s"}, env...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// regate runs regate to completion (60 s at most) and returns how it ended.
func regate(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := regateCmd(ctx, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := result{code: cmd.ProcessState.ExitCode(), stdout: stdout.String(), stderr: stderr.String()}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("running regate %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("regate %q timed out\nstdout: %s\nstderr: %s", args, res.stdout, res.stderr)
	}
	return res
}

// wantCode fails the test unless res ended with code.
func wantCode(t *testing.T, res result, code int) {
	t.Helper()
	if res.code != code {
		t.Fatalf("exit status %d, want %d\nstdout: %s\nstderr: %s", res.code, code, res.stdout, res.stderr)
	}
}

// upstream is a local HTTP server that counts the requests reaching it.
type upstream struct {
	*httptest.Server
	hits atomic.Int64
}

func newUpstream(t *testing.T) *upstream {
	t.Helper()
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		fmt.Fprintf(w, "hello from upstream: %s %s\n", r.Method, r.URL.Path)
	}))
	t.Cleanup(u.Close)
	return u
}

// port is the upstream's port.
func (u *upstream) port() string {
	return u.URL[strings.LastIndexByte(u.URL, ':')+1:]
}

// need skips the test when a tool it drives is missing (.ci/run installs
// them).
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skip(t, "%s not installed (.ci/run installs it)", tool)
		}
	}
}

// writeFile writes a fixture under t.TempDir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// readLineContaining reads r until a line containing s, and returns it.
func readLineContaining(t *testing.T, r io.Reader, s string) string {
	t.Helper()
	var line []byte
	buf := make([]byte, 1)
	var seen strings.Builder
	for {
		n, err := r.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				if strings.Contains(string(line), s) {
					return string(line)
				}
				seen.Write(append(line, '\n'))
				line = line[:0]
				continue
			}
			line = append(line, buf[0])
		}
		if err != nil {
			t.Fatalf("reading until %q: %v; read so far:\n%s%s", s, err, seen.String(), line)
		}
	}
}
