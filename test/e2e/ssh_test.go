package e2e

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const sshd = "/usr/sbin/sshd"

// sshServer is an sshd on 127.0.0.1 with its own host key and
// configuration, accepting one user key for the current user.
type sshServer struct {
	port     string
	user     string
	key      string // the user's private key
	hostLine string // the host key, as a known_hosts line for ssh.test
}

// startSSHD starts Debian's sshd in the foreground on a free loopback
// port. As root, sshd needs its privilege separation directory, which the
// package's service unit would create.
func startSSHD(t *testing.T) *sshServer {
	t.Helper()
	need(t, sshd, "ssh-keygen", "ssh", "git")
	dir := t.TempDir()
	for _, k := range []string{"host_key", "user_key"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "authorized_keys", string(pub))
	hostPub, err := os.ReadFile(filepath.Join(dir, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	me, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	cfg := writeFile(t, dir, "sshd_config", strings.Join([]string{
		"Port " + port,
		"ListenAddress 127.0.0.1",
		"HostKey " + filepath.Join(dir, "host_key"),
		"AuthorizedKeysFile " + filepath.Join(dir, "authorized_keys"),
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AllowUsers " + me.Username,
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"LogLevel ERROR",
	}, "\n")+"\n")
	cmd := exec.Command(sshd, "-D", "-e", "-f", cfg)
	var log bytes.Buffer // the readiness probe alone makes sshd log
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("sshd's log:\n%s", log.String())
		}
	})
	waitUntil(t, "sshd to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	f := strings.Fields(string(hostPub))
	return &sshServer{port: port, user: me.Username, key: filepath.Join(dir, "user_key"),
		hostLine: "[ssh.test]:" + port + " " + f[0] + " " + f[1] + "\n"}
}

// A user's own ssh command keeps its key and known-hosts options under
// regate, which adds its ProxyCommand: `git clone ssh://` succeeds through
// the policy, from GIT_SSH_COMMAND and from core.sshCommand (no variable
// set); the same clone of a host the policy does not allow is blocked.
func TestRunKeepsTheUsersSSHCommand(t *testing.T) {
	srv := startSSHD(t)
	home := t.TempDir()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	git(t, home, root, "init", "-q", "-b", "main", work)
	writeFile(t, work, "README", "cloned over ssh through regate\n")
	git(t, home, work, "add", "README")
	git(t, home, work, "commit", "-q", "-m", "first")
	git(t, home, root, "clone", "-q", "--bare", work, filepath.Join(root, "repo.git"))
	kh := writeFile(t, home, "known_hosts", srv.hostLine)
	// Only this command knows the key and the host key: ssh's defaults
	// (~ from the password database) know neither.
	userSSH := "ssh -F /dev/null -i " + srv.key + " -o IdentitiesOnly=yes -o BatchMode=yes -o UserKnownHostsFile=" + kh + " -o GlobalKnownHostsFile=/dev/null"
	url := "ssh://" + srv.user + "@ssh.test:" + srv.port + filepath.Join(root, "repo.git")
	flags := []string{"run", "--allow", "ssh.test:" + srv.port, "--allow-cidr", "127.0.0.0/8", "--resolve", "ssh.test:127.0.0.1", "--"}
	clone := func(t *testing.T, env []string, flags []string) (result, string) {
		t.Helper()
		dest := filepath.Join(t.TempDir(), "clone")
		return regate(t, append(gitEnv(home), env...), append(flags, "git", "clone", "-q", url, dest)...), dest
	}
	wantClone := func(t *testing.T, res result, dest string) {
		t.Helper()
		wantCode(t, res, 0)
		if b, err := os.ReadFile(filepath.Join(dest, "README")); err != nil || string(b) != "cloned over ssh through regate\n" {
			t.Errorf("README = %q, %v\nstderr: %s", b, err, res.stderr)
		}
	}
	t.Run("GIT_SSH_COMMAND", func(t *testing.T) {
		res, dest := clone(t, []string{"GIT_SSH_COMMAND=" + userSSH}, flags)
		wantClone(t, res, dest)
	})
	t.Run("core.sshCommand", func(t *testing.T) {
		global := writeFile(t, t.TempDir(), "gitconfig", "[core]\n\tsshCommand = "+userSSH+"\n")
		res, dest := clone(t, []string{"GIT_CONFIG_GLOBAL=" + global}, flags)
		wantClone(t, res, dest)
	})
	t.Run("blocked", func(t *testing.T) {
		res, _ := clone(t, []string{"GIT_SSH_COMMAND=" + userSSH}, []string{"run", "--allow-cidr", "127.0.0.0/8", "--resolve", "ssh.test:127.0.0.1", "--"})
		if res.code == 0 || !strings.Contains(res.stderr, "regate: blocked 1 connection to ssh.test:"+srv.port+" — no rule allows ssh.test") {
			t.Errorf("a clone of a host the policy does not allow: exit %d\n%s", res.code, res.stderr)
		}
	})
}

// ssh takes an option's first value: a ProxyJump or ProxyCommand of the
// user's own command would win over regate's, so run says so.
func TestRunWarnsWhenTheSSHCommandHasItsOwnProxy(t *testing.T) {
	for cmd, warn := range map[string]bool{
		"ssh -J bastion.example":         true,
		"ssh -o ProxyCommand='nc %h %p'": true,
		"ssh -i /keys/deploy -p 2222":    false,
	} {
		res := regate(t, []string{"GIT_SSH_COMMAND=" + cmd}, "run", "--", "true")
		wantCode(t, res, 0)
		if got := strings.Contains(res.stderr, "sets its own ProxyCommand or ProxyJump"); got != warn {
			t.Errorf("GIT_SSH_COMMAND=%q: warned %v, want %v:\n%s", cmd, got, warn, res.stderr)
		}
	}
}
