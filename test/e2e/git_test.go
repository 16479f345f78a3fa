package e2e

import (
	"bytes"
	"net"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// gitEnv isolates git from the user's and the system's configuration.
func gitEnv(home string) []string {
	return []string{"HOME=" + home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com", "GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com"}
}

func git(t *testing.T, home, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv(gitEnv(home)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %q: %v\n%s", args, err, out)
	}
}

// gitServer serves a bare repository holding README over git's smart HTTP
// protocol (git http-backend through CGI).
func gitServer(t *testing.T, home string) *httptest.Server { return gitServerTLS(t, home, false) }

// gitServerTLS is gitServer, over HTTPS when tls is set.
func gitServerTLS(t *testing.T, home string, tls bool) *httptest.Server {
	t.Helper()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	git(t, home, root, "init", "-q", "-b", "main", work)
	writeFile(t, work, "README", "cloned through regate\n")
	git(t, home, work, "add", "README")
	git(t, home, work, "commit", "-q", "-m", "first")
	git(t, home, root, "clone", "-q", "--bare", work, filepath.Join(root, "repo.git"))
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(&cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	})
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

func TestRunGitCloneOverHTTP(t *testing.T) {
	need(t, "git")
	home := t.TempDir()
	srv := gitServer(t, home)
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	dest := filepath.Join(t.TempDir(), "clone")
	url := "http://git.test:" + port + "/repo.git"
	flags := []string{"run", "--allow-cidr", "127.0.0.0/8", "--resolve", "git.test:127.0.0.1"}

	res := regate(t, gitEnv(home), append(flags, "--allow", "git.test", "--", "git", "clone", "-q", url, dest)...)
	wantCode(t, res, 0)
	if b, err := os.ReadFile(filepath.Join(dest, "README")); err != nil || string(b) != "cloned through regate\n" {
		t.Errorf("cloned README: %q, %v", b, err)
	}

	res = regate(t, gitEnv(home), append(flags, "--allow", "other.test", "--", "git", "clone", "-q", url, dest+"2")...)
	wantCode(t, res, 128) // git's own failure status
	if !strings.Contains(res.stderr, "regate: blocked 1 connection to git.test:"+port+" — no rule allows git.test") {
		t.Errorf("stderr lacks the summary:\n%s", res.stderr)
	}
}

// TestIsolateGitCloneOverHTTPS: git over HTTPS (CONNECT, SNI check)
// works under --isolate as without it.
func TestIsolateGitCloneOverHTTPS(t *testing.T) {
	need(t, "git")
	needIsolation(t)
	home := t.TempDir()
	srv := gitServerTLS(t, home, true)
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	dest := filepath.Join(t.TempDir(), "clone")
	env := append(gitEnv(home), "GIT_SSL_NO_VERIFY=1")
	res := regate(t, env, "run", "--isolate", "--allow-cidr", "127.0.0.0/8", "--resolve", "git.test:127.0.0.1",
		"--allow", "git.test", "--", "git", "clone", "-q", "https://git.test:"+port+"/repo.git", dest)
	wantCode(t, res, 0)
	if b, err := os.ReadFile(filepath.Join(dest, "README")); err != nil || string(b) != "cloned through regate\n" {
		t.Errorf("cloned README: %q, %v\n%s", b, err, res.stderr)
	}
}

// echoServer echoes what it reads until the client half-closes.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var buf bytes.Buffer
				_, _ = buf.ReadFrom(c)
				_, _ = c.Write(bytes.ToUpper(buf.Bytes()))
			}()
		}
	}()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// `regate connect` is git's SSH ProxyCommand: a CONNECT tunnel relaying
// standard input and output, half-close included.
func TestConnectRelays(t *testing.T) {
	need(t, "sh")
	port := echoServer(t)
	res := regate(t, nil, "run", "--allow", "echo.test", "--allow-cidr", "127.0.0.0/8", "--resolve", "echo.test:127.0.0.1", "--",
		"sh", "-c", `printf 'ping' | "$0" connect echo.test "$1"; echo " $?"; "$0" connect blocked.test "$1" </dev/null; echo " $?"`, regateBin, port)
	wantCode(t, res, 0)
	if !strings.HasPrefix(res.stdout, "PING 0\n") || !strings.HasSuffix(res.stdout, " 1\n") {
		t.Errorf("stdout = %q, want the echo then a refusal", res.stdout)
	}
	if !strings.Contains(res.stderr, "proxy refused blocked.test:"+port+": 403") {
		t.Errorf("stderr:\n%s", res.stderr)
	}
}

// ssh, run as GIT_SSH_COMMAND says, reaches the network only through
// `regate connect`, so its destination is decided by the policy.
func TestRunGitSSHCommandGoesThroughPolicy(t *testing.T) {
	need(t, "ssh", "sh")
	res := regate(t, []string{"HOME=" + t.TempDir()}, "run", "--",
		"sh", "-c", `eval "$GIT_SSH_COMMAND" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null git@blocked.test true`)
	if res.code == 0 {
		t.Fatalf("ssh to a blocked host succeeded:\n%s", res.stderr)
	}
	if !strings.Contains(res.stderr, "regate: blocked 1 connection to blocked.test:22 — no rule allows blocked.test") {
		t.Errorf("stderr lacks the summary:\n%s", res.stderr)
	}
}
