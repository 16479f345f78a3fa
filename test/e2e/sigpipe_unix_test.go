//go:build unix

package e2e

import (
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestServeSurvivesClosedStdout: `regate serve --decision-log -` whose
// standard output is a pipe nobody reads any more keeps serving (it
// warns and counts the events it cannot write) instead of dying of
// SIGPIPE.
func TestServeSurvivesClosedStdout(t *testing.T) {
	need(t, "curl")
	up := newUpstream(t)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d := startServeWith(t, func(cmd *exec.Cmd) { cmd.Stdout = w }, "--decision-log", "-",
		"--allow", "allowed.test", "--allow-cidr", "127.0.0.0/8", "--resolve", "allowed.test:127.0.0.1")
	_ = w.Close() // the daemon holds the only write end
	url := "http://allowed.test:" + up.port() + "/"
	wantCurl(t, "200", "-x", "http://"+d.http, url)
	if _, err := io.ReadFull(r, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	_ = r.Close() // like `| head -c 10`
	for i := range 5 {
		for _, proxy := range []string{"http://" + d.http, "socks5h://" + d.socks} {
			if got := curlStatus(t, "-x", proxy, url); got != "200" {
				t.Fatalf("request %d through %s after stdout closed: %q, want 200", i, proxy, got)
			}
		}
		time.Sleep(20 * time.Millisecond) // each its own write
	}
	readLineContaining(t, d.logs, `"msg":"writing the decision log failed; its events are lost until a write succeeds"`)
	if code, logs := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after SIGTERM %d, want 0\n%s", code, logs)
	}
}

// TestRunChildKeepsDefaultSIGPIPE: regate handles SIGPIPE for its own
// writes, but the child of `regate run` gets the default disposition: a
// pipeline's writer still dies of SIGPIPE when its reader is gone.
func TestRunChildKeepsDefaultSIGPIPE(t *testing.T) {
	need(t, "sh", "yes", "head")
	res := regate(t, nil, "run", "--", "sh", "-c", "kill -PIPE $$; exit 3")
	wantCode(t, res, 128+int(syscall.SIGPIPE))
	res = regate(t, nil, "run", "--", "sh", "-c", "yes | head -1")
	wantCode(t, res, 0)
	if res.stdout != "y\n" || strings.Contains(res.stderr, "roken pipe") {
		t.Errorf("yes | head -1: stdout %q, stderr %q; want yes killed by SIGPIPE, silently", res.stdout, res.stderr)
	}
}
