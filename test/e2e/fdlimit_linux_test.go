package e2e

import (
	"github.com/regate/regate/internal/testenv"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestServeSurvivesFDExhaustion: a flood of connections held open runs the
// daemon out of file descriptors; both listeners back off (and warn) rather
// than stop, and once the flood is gone both proxy requests again.
func TestServeSurvivesFDExhaustion(t *testing.T) {
	need(t, "curl")
	up := newUpstream(t)
	d := startServe(t, "--allow", "allowed.test", "--allow-cidr", "127.0.0.0/8", "--resolve", "allowed.test:127.0.0.1")
	pid := d.cmd.Process.Pid
	fds, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		testenv.Skip(t, "%v", err)
	}
	var lim unix.Rlimit
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, nil, &lim); err != nil {
		testenv.Skip(t, "%v", err)
	}
	lim.Cur = uint64(len(fds) + 32)
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &lim, nil); err != nil {
		testenv.Skip(t, "%v", err)
	}

	const perListener = 300
	conns := flood(t, perListener, d.http, d.socks)
	readLineContaining(t, d.logs, `"msg":"accepting connections failed; retrying"`)
	time.Sleep(500 * time.Millisecond) // the listeners keep failing meanwhile
	for _, c := range conns {
		_ = c.Close()
	}

	url := "http://allowed.test:" + up.port() + "/"
	for _, proxy := range []string{"http://" + d.http, "socks5h://" + d.socks} {
		deadline := time.Now().Add(15 * time.Second)
		got := curlStatus(t, "-x", proxy, url)
		for got != "200" && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			got = curlStatus(t, "-x", proxy, url)
		}
		if got != "200" {
			t.Errorf("after the flood, through %s: %q, want 200", proxy, got)
		}
	}
	if code, logs := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status after SIGTERM %d, want 0 (the daemon had stopped?)\n%s", code, logs)
	}
}

// flood opens n connections to each address concurrently and keeps them
// open (sending nothing).
func flood(t *testing.T, n int, addrs ...string) []net.Conn {
	t.Helper()
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	for _, addr := range addrs {
		for range n {
			wg.Go(func() {
				c, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					return // a full backlog: the flood is big enough
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return conns
}
