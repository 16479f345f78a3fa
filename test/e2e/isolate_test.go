package e2e

import (
	"context"
	"github.com/regate/regate/internal/testenv"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// needIsolation skips where the kernel cannot give regate namespaces,
// except in CI, where that is a failure: CI machines have them.
func needIsolation(t *testing.T) {
	t.Helper()
	res := regate(t, nil, "run", "--isolate", "--", "true")
	if res.code == 0 {
		return
	}
	testenv.Skip(t, "--isolate unavailable here (exit %d): %s", res.code, res.stderr)
}

// isolated runs `regate run --isolate` with the sandbox flags and extra.
func isolated(t *testing.T, extra []string, cmd ...string) result {
	t.Helper()
	args := append(append(append([]string{}, sandboxFlags()...), "--isolate"), extra...)
	return regate(t, nil, append(append(args, "--"), cmd...)...)
}

// TestIsolateProxyPath: proxy-aware tools work as without --isolate, and
// denies are answered and summarised the same way.
func TestIsolateProxyPath(t *testing.T) {
	need(t, "curl", "sh")
	needIsolation(t)
	up := newUpstream(t)
	p := up.port()
	script := `
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; echo " $?"; }
echo "allowed: $(curl -s http://allowed.test:` + p + `/ok)"
echo "tunnel: $(curl -s -p http://allowed.test:` + p + `/tunnel)"
echo "socks: $(curl -s -x "$REGATE_SOCKS_PROXY" http://allowed.test:` + p + `/socks)"
echo "blocked: $(code http://denied.test:` + p + `/)"
`
	res := isolated(t, nil, "sh", "-c", script)
	wantCode(t, res, 0)
	for _, want := range []string{
		"allowed: hello from upstream: GET /ok",
		"tunnel: hello from upstream: GET /tunnel",
		"socks: hello from upstream: GET /socks",
		"blocked: 403 0",
	} {
		if !strings.Contains(res.stdout, want+"\n") {
			t.Errorf("stdout lacks %q:\n%s\nstderr: %s", want, res.stdout, res.stderr)
		}
	}
	if !strings.Contains(res.stderr, "regate: blocked 1 connection to denied.test:"+p) {
		t.Errorf("no summary:\n%s", res.stderr)
	}
}

// TestIsolateClosesTheWaysOut tries each way around the proxy from inside
// and asserts that it fails, and how.
func TestIsolateClosesTheWaysOut(t *testing.T) {
	need(t, "curl")
	needIsolation(t)
	up := newUpstream(t)
	dir := t.TempDir()
	policy := writeFile(t, dir, "policy.rego", "package regate.network\n\ndecision := {\"allow\": false, \"reason\": \"locked\"}\n")
	docker := filepath.Join(dir, "docker.sock")
	dl, err := net.Listen("unix", docker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dl.Close() })
	abstract := "regate-e2e-" + strconv.Itoa(os.Getpid())
	al, err := net.Listen("unix", "@"+abstract)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { al.Close() })
	flags := []string{"--policy", policy, "--hide", docker}
	tests := []struct {
		name string
		cmd  []string
		want string // in the failure
	}{
		{"raw TCP to a host loopback server", []string{probeBin, "tcp", "127.0.0.1:" + up.port()}, "connection refused"},
		{"UDP out", []string{probeBin, "udp", "198.18.0.1:443"}, "connection refused"},
		{"host abstract unix socket", []string{probeBin, "abstract", abstract}, "connection refused"},
		{"hidden path socket", []string{probeBin, "unix", docker}, "connection refused"},
		{"write the policy", []string{probeBin, "write", policy}, "read-only file system"},
		{"mount", []string{probeBin, "mount", dir}, "operation not permitted"},
		{"umount /proc", []string{probeBin, "umount", "/proc"}, "operation not permitted"},
		{"lo down", []string{probeBin, "lo-down"}, "operation not permitted"},
		{"new network namespace", []string{probeBin, "unshare-net"}, "operation not permitted"},
		{"nested user namespace", []string{"unshare", "-U", "true"}, "No space left on device"},
		{"vsock", []string{probeBin, "vsock"}, "address family not supported"},
		{"ptrace", []string{probeBin, "ptrace"}, "operation not permitted"},
		{"io_uring", []string{probeBin, "io_uring"}, "operation not permitted"},
		{"curl --noproxy", []string{"curl", "-sS", "--noproxy", "*", "--connect-timeout", "3", "http://allowed.test:" + up.port() + "/"}, "Couldn't connect"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := isolated(t, flags, tc.cmd...)
			if res.code == 0 || !strings.Contains(res.stdout+res.stderr, tc.want) {
				t.Fatalf("exit %d, want a failure with %q\nstdout: %s\nstderr: %s", res.code, tc.want, res.stdout, res.stderr)
			}
		})
	}
	if b, _ := os.ReadFile(policy); strings.Contains(string(b), "inside") {
		t.Fatalf("the policy was written: %s", b)
	}
	if up.hits.Load() != 0 {
		t.Fatalf("the upstream was reached %d times", up.hits.Load())
	}
}

// TestIsolateCommandHasNoPrivileges: no capability, no_new_privs, a
// seccomp filter; root stays uid 0, --isolate-user changes it; the
// processes of the host and regate's environment are out of sight.
func TestIsolateCommandHasNoPrivileges(t *testing.T) {
	needIsolation(t)
	res := isolated(t, nil, probeBin, "status")
	wantCode(t, res, 0)
	for _, want := range []string{"CapInh:\t0000000000000000", "CapPrm:\t0000000000000000", "CapEff:\t0000000000000000",
		"CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2",
		"Uid:\t" + strconv.Itoa(os.Getuid()) + "\t"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("status lacks %q:\n%s\n%s", want, res.stdout, res.stderr)
		}
	}
	if os.Getuid() == 0 {
		res := isolated(t, []string{"--isolate-user", "nobody"}, probeBin, "status")
		wantCode(t, res, 0)
		if !strings.Contains(res.stdout, "Uid:\t65534\t65534\t65534\t65534") || !strings.Contains(res.stdout, "CapEff:\t0000000000000000") {
			t.Errorf("--isolate-user nobody:\n%s\n%s", res.stdout, res.stderr)
		}
		// A setuid-root binary (and one with file capabilities) gains
		// nothing: no_new_privs.
		suid := filepath.Join(filepath.Dir(probeBin), "probe-suid")
		b, err := os.ReadFile(probeBin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(suid, b, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(suid, 0o4755); err != nil {
			t.Fatal(err)
		}
		res = isolated(t, []string{"--isolate-user", "nobody"}, suid, "status")
		wantCode(t, res, 0)
		if !strings.Contains(res.stdout, "Uid:\t65534\t65534\t65534\t65534") || !strings.Contains(res.stdout, "CapEff:\t0000000000000000") {
			t.Errorf("a setuid-root binary gained privileges:\n%s\n%s", res.stdout, res.stderr)
		}
	}
	mark := "REGATE_E2E_MARK=" + strconv.Itoa(os.Getpid())
	res = regate(t, []string{mark}, append(append(sandboxFlags(), "--isolate", "--"), probeBin, "read", "/proc/1/environ")...)
	if strings.Contains(res.stdout, mark) {
		t.Errorf("the init's environment holds regate's:\n%s", res.stdout)
	}
	res = isolated(t, nil, "sh", "-c", "ls /proc | grep -c '^[0-9]'")
	if n, _ := strconv.Atoi(strings.TrimSpace(res.stdout)); n == 0 || n > 5 {
		t.Errorf("%q processes visible inside, want the init and the command's own", res.stdout)
	}
}

// TestIsolateExitStatusAndSignals: the command's status is regate's, as
// without --isolate, and signals reach it.
func TestIsolateExitStatusAndSignals(t *testing.T) {
	need(t, "sh")
	needIsolation(t)
	for _, tc := range []struct {
		name string
		cmd  []string
		code int
	}{
		{"success", []string{"true"}, 0},
		{"status", []string{"sh", "-c", "exit 7"}, 7},
		{"killed", []string{"sh", "-c", "kill -KILL $$"}, 128 + 9},
		{"not found", []string{"/nonexistent/cmd"}, 127},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantCode(t, isolated(t, nil, tc.cmd...), tc.code)
		})
	}
	t.Run("SIGTERM reaches the command", func(t *testing.T) {
		cmd := startIsolated(t, "ready", "sh", "-c", "trap 'exit 42' TERM; echo ready; while :; do sleep 0.1; done")
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if code := cmd.ProcessState.ExitCode(); code != 42 {
			t.Fatalf("exit %d, want 42", code)
		}
	})
}

// TestIsolateKillingRegateKillsEverything: kill -9 of regate ends the
// command and whatever it started.
func TestIsolateKillingRegateKillsEverything(t *testing.T) {
	need(t, "sh", "sleep")
	needIsolation(t)
	marker := strconv.Itoa(300+os.Getpid()%100) + ".25"
	cmd := startIsolated(t, "started", "sh", "-c", "sleep "+marker+" & echo started; sleep "+marker)
	for deadline := time.Now().Add(5 * time.Second); countProcesses("sleep", marker) != 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d sleeps running, want 2", countProcesses("sleep", marker))
		}
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if countProcesses("sleep", marker) == 0 {
			return
		}
	}
	t.Fatalf("%d sleeps still running after regate was killed", countProcesses("sleep", marker))
}

// startIsolated starts `regate run --isolate -- CMD…` (30 s at most) and
// returns once CMD has printed a line containing ready.
func startIsolated(t *testing.T, ready string, cmdline ...string) *exec.Cmd {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	cmd := regateCmd(ctx, nil, append(append(sandboxFlags(), "--isolate", "--"), cmdline...)...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	readLineContaining(t, out, ready)
	return cmd
}

// countProcesses counts the host's processes whose argv is exactly argv.
func countProcesses(argv ...string) int {
	want := strings.Join(argv, "\x00") + "\x00"
	paths, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	n := 0
	for _, p := range paths {
		if b, err := os.ReadFile(p); err == nil && string(b) == want {
			n++
		}
	}
	return n
}

// TestIsolateAsAnUnprivilegedCaller: a caller that is not root gets the
// same sandbox (the init's setup runs on ambient capabilities of the new
// user namespace); its command keeps the caller's uid and nothing else.
func TestIsolateAsAnUnprivilegedCaller(t *testing.T) {
	need(t, "runuser")
	needIsolation(t)
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root to become another user")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "runuser", "-u", "nobody", "--", regateBin, "run", "--isolate", "--", probeBin, "status")
	cmd.Env = cleanEnv("GORACE=atexit_sleep_ms=0", "HOME=/", "XDG_RUNTIME_DIR=")
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"Uid:\t65534\t65534\t65534\t65534", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "NoNewPrivs:\t1", "Seccomp:\t2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// TestIsolateFailsClosed: where the kernel gives no user namespaces (here:
// user.max_user_namespaces 0 inside an outer one), --isolate exits 125
// naming the setting, and the command never runs.
func TestIsolateFailsClosed(t *testing.T) {
	need(t, "unshare", "sh")
	marker := filepath.Join(t.TempDir(), "ran")
	script := `echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"`
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-Ur", "sh", "-c", script, "sh", regateBin, "run", "--isolate", "--", "sh", "-c", "echo > "+marker)
	cmd.Env = cleanEnv("GORACE=atexit_sleep_ms=0")
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code != 125 || !strings.Contains(string(out), "user.max_user_namespaces") {
		t.Fatalf("exit %d, want 125 naming user.max_user_namespaces:\n%s", code, out)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("the command ran without isolation")
	}
}

// TestIsolateFromConfiguration: isolate.enabled and isolate.hide in the
// configuration file do what the flags do.
func TestIsolateFromConfiguration(t *testing.T) {
	needIsolation(t)
	dir := t.TempDir()
	secret := writeFile(t, dir, "secret.txt", "the secret\n")
	cfg := writeFile(t, dir, "regate.yaml", "isolate:\n  enabled: true\n  hide: ["+secret+"]\n")
	res := regate(t, nil, "run", "--config", cfg, "--", probeBin, "status")
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, "Seccomp:\t2") {
		t.Errorf("not isolated:\n%s\n%s", res.stdout, res.stderr)
	}
	res = regate(t, nil, "run", "--config", cfg, "--", probeBin, "read", secret)
	if strings.Contains(res.stdout, "the secret") {
		t.Errorf("isolate.hide did not hide the file:\n%s", res.stdout)
	}
}
