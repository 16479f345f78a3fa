//go:build unix

package proxy

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// acceptErr is an accept error as the net package returns it.
func acceptErr(errno syscall.Errno) error {
	return &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", errno)}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return false }

func TestTemporaryAccept(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"EMFILE", acceptErr(syscall.EMFILE), true},
		{"ENFILE", acceptErr(syscall.ENFILE), true},
		{"ENOBUFS", acceptErr(syscall.ENOBUFS), true},
		{"ENOMEM", acceptErr(syscall.ENOMEM), true},
		{"ECONNABORTED", acceptErr(syscall.ECONNABORTED), true},
		{"ECONNRESET", acceptErr(syscall.ECONNRESET), true},
		{"wrapped EMFILE", fmt.Errorf("accepting: %w", syscall.EMFILE), true},
		{"timeout", timeoutErr{}, true},
		{"closed listener", &net.OpError{Op: "accept", Net: "tcp", Err: net.ErrClosed}, false},
		{"EBADF", acceptErr(syscall.EBADF), false},
		{"EINVAL", acceptErr(syscall.EINVAL), false},
		{"other", errors.New("boom"), false},
		{"nil", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := temporaryAccept(tt.err); got != tt.want {
				t.Fatalf("temporaryAccept(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// flakyListener fails its first Accepts with errs, then accepts.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

func flaky(t *testing.T) *flakyListener {
	t.Helper()
	var errs []error
	for _, errno := range []syscall.Errno{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		errs = append(errs, acceptErr(errno))
	}
	return &flakyListener{Listener: listen(t), errs: errs}
}

// TestListenersSurviveAcceptErrors: out of descriptors or memory, both
// listeners back off and keep serving instead of returning.
func TestListenersSurviveAcceptErrors(t *testing.T) {
	up := echoUpstream(t)
	port := portOf(t, up.URL)
	p, err := New(testConfig(), allowHosts("allowed.test"))
	if err != nil {
		t.Fatal(err)
	}
	httpLn, socksLn := flaky(t), flaky(t)
	errs := make(chan error, 2)
	go func() { errs <- p.ServeHTTPProxy(httpLn) }()
	go func() { errs <- p.ServeSOCKS(socksLn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})

	resp, err := proxyClient(t, httpLn.Addr().String(), nil).Get("http://allowed.test:" + port + "/h")
	if err != nil {
		t.Fatalf("HTTP listener after accept errors: %v (serve: %v)", err, served(errs))
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "GET /h body=" {
		t.Fatalf("HTTP body %q", body)
	}

	c, err := socksDialer(t, socksLn.Addr().String(), nil).DialContext(context.Background(), "tcp", "allowed.test:"+port)
	if err != nil {
		t.Fatalf("SOCKS5 listener after accept errors: %v (serve: %v)", err, served(errs))
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /s HTTP/1.1\r\nHost: allowed.test:"+port+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	if !strings.HasPrefix(string(body), "GET /s") {
		t.Fatalf("SOCKS5 body %q", body)
	}
	if err := served(errs); err != nil {
		t.Fatalf("a listener stopped: %v", err)
	}
}

// served is what a Serve returned so far, nil when both still serve.
func served(errs chan error) error {
	select {
	case err := <-errs:
		return fmt.Errorf("Serve returned %v", err)
	default:
		return nil
	}
}
