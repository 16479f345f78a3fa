package proxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regate/regate/internal/testenv"
)

// scriptedUpstream is a raw HTTP/1.1 upstream: each accepted connection
// answers its requests through answer(conn number, request number), which
// returns the bytes to write and whether to close afterwards.
type scriptedUpstream struct {
	ln     net.Listener
	mu     sync.Mutex
	conns  int
	answer func(conn, req int) (string, bool)
}

func startScripted(t *testing.T, answer func(conn, req int) (string, bool)) *scriptedUpstream {
	t.Helper()
	u := &scriptedUpstream{ln: listen(t), answer: answer}
	go func() {
		for {
			c, err := u.ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns++
			n := u.conns
			u.mu.Unlock()
			go u.serve(c, n)
		}
	}()
	t.Cleanup(func() { u.ln.Close() })
	return u
}

func (u *scriptedUpstream) serve(c net.Conn, n int) {
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 1; ; i++ {
		r, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, r.Body)
		out, closing := u.answer(n, i)
		if _, err := io.WriteString(c, out); err != nil || closing {
			return
		}
	}
}

func (u *scriptedUpstream) accepted() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.conns
}

func okAnswer(body string) string {
	return fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
}

// TestH1ClientPoolsAndNeverMisattributes drives bodiless GETs through the
// proxy's h1Client against upstreams that keep connections alive, close
// them while idle, or send an unsolicited answer while idle: every
// request gets its own answer, and idle connections are reused only when
// nothing arrived on them.
func TestH1ClientPoolsAndNeverMisattributes(t *testing.T) {
	tests := []struct {
		name   string
		answer func(conn, req int) (string, bool)
		conns  int // upstream connections for three requests
	}{
		{name: "keep-alive reuses one connection", conns: 1,
			answer: func(c, r int) (string, bool) { return okAnswer(fmt.Sprintf("c%d r%d", c, r)), false }},
		{name: "closed while idle: a new connection", conns: 3,
			answer: func(c, r int) (string, bool) { return okAnswer(fmt.Sprintf("c%d r%d", c, r)), true }},
		{name: "unsolicited answer while idle: never taken for the next", conns: 3,
			answer: func(c, r int) (string, bool) {
				return okAnswer(fmt.Sprintf("c%d r%d", c, r)) + okAnswer("unsolicited"), false
			}},
		{name: "Connection: close is honoured", conns: 3,
			answer: func(c, r int) (string, bool) {
				return fmt.Sprintf("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nc%d r%d", c, r), false
			}},
		{name: "1xx answers are skipped", conns: 1,
			answer: func(c, r int) (string, bool) {
				return "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + okAnswer(fmt.Sprintf("c%d r%d", c, r)), false
			}},
		{name: "chunked body to its end, then reused", conns: 1,
			answer: func(c, r int) (string, bool) {
				return fmt.Sprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nc%d r%d\r\n0\r\n\r\n", c, r), false
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := startScripted(t, tt.answer)
			h := startProxy(t, testConfig(), allowHosts("allowed.test"))
			c, err := net.Dial("tcp", h.httpAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			br := bufio.NewReader(c)
			url := "http://allowed.test:" + portOf(t, up.ln.Addr().String()) + "/"
			var got []string
			for range 3 {
				if _, err := io.WriteString(c, "GET "+url+" HTTP/1.1\r\nHost: allowed.test:"+portOf(t, up.ln.Addr().String())+"\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(br, nil)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("answer %d: %s %q", len(got)+1, resp.Status, b)
				}
				got = append(got, string(b))
				time.Sleep(20 * time.Millisecond) // let a closing upstream's FIN arrive
			}
			want := make([]string, 3)
			for i := range want {
				if tt.conns == 1 {
					want[i] = fmt.Sprintf("c1 r%d", i+1)
				} else {
					want[i] = fmt.Sprintf("c%d r1", i+1)
				}
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("answers %q, want %q", got, want)
			}
			if n := up.accepted(); n != tt.conns {
				t.Errorf("upstream accepted %d connections, want %d", n, tt.conns)
			}
		})
	}
}

// TestH1ClientRetriesAStaleConnection: an upstream that closes an idle
// connection just as it is reused (after the peek) costs the request
// nothing — a replayable request is sent again on a new connection.
func TestH1ClientRetriesAStaleConnection(t *testing.T) {
	if !peekSupported {
		testenv.Skip(t, "the h1Client is not used on this platform")
	}
	up := startScripted(t, func(c, r int) (string, bool) { return okAnswer(fmt.Sprintf("c%d r%d", c, r)), false })
	h := startProxy(t, testConfig(), allowHosts("allowed.test"))
	port := portOf(t, up.ln.Addr().String())
	client := proxyClient(t, h.httpAddr, nil)
	get := func() string {
		t.Helper()
		resp, err := client.Get("http://allowed.test:" + port + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := get(); got != "c1 r1" {
		t.Fatalf("first answer %q", got)
	}
	// Break the pooled connection behind the peek's back: nothing arrived
	// on it, so the peek passes, but writing the next request fails.
	h.p.h1.mu.Lock()
	n := 0
	for _, conns := range h.p.h1.idle {
		for _, pc := range conns {
			pc.c = failingWrites{pc.c.(*net.TCPConn)}
			pc.bw.Reset(pc.c)
			n++
		}
	}
	h.p.h1.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	if got := get(); got != "c2 r1" {
		t.Fatalf("second answer %q, want it from a new connection", got)
	}
}

// failingWrites is a socket whose writes fail.
type failingWrites struct{ *net.TCPConn }

func (failingWrites) Write([]byte) (int, error) { return 0, errors.New("broken by the test") }

// TestH1ClientClientGoneMidBody: a client that goes away while the
// upstream's answer is still coming closes the upstream connection (the
// request's context cuts the read that waits), rather than leaving it
// waiting or putting it back in the pool.
func TestH1ClientClientGoneMidBody(t *testing.T) {
	ln := listen(t)
	upClosed, halfSent := make(chan struct{}), make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf.")
		close(halfSent)
		_, _ = br.ReadByte() // blocks until the proxy closes its side
		close(upClosed)
	}()
	h := startProxy(t, testConfig(), allowHosts("allowed.test"))
	c, err := net.Dial("tcp", h.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	port := portOf(t, ln.Addr().String())
	if _, err := io.WriteString(c, "GET http://allowed.test:"+port+"/ HTTP/1.1\r\nHost: allowed.test:"+port+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select { // the proxy is now reading the rest of the body
	case <-halfSent:
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not reach the upstream")
	}
	_ = c.Close()
	select {
	case <-upClosed:
	case <-time.After(10 * time.Second):
		t.Fatal("the upstream connection stayed open after the client went away")
	}
	h.p.h1.mu.Lock()
	idle := h.p.h1.nIdle
	h.p.h1.mu.Unlock()
	if idle != 0 {
		t.Errorf("%d idle connections pooled, want none", idle)
	}
}
