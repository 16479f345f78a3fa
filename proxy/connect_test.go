package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regate/regate/engine"
)

// tcpUpstream serves handle on a loopback port and returns the port.
func tcpUpstream(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return portOf(t, ln.Addr().String())
}

// connect opens a CONNECT tunnel through the proxy and returns the
// connection and the proxy's answer.
func connect(t *testing.T, proxyAddr, target, extra string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c, err := net.Dial("tcp", proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", target, target, extra)
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		t.Fatalf("reading CONNECT answer: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	return c, br, resp
}

func TestConnectTLSThroughGoClient(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(echoHandler))
	t.Cleanup(up.Close)
	port := portOf(t, up.URL)
	d := allowHosts("allowed.test")
	h := startProxy(t, testConfig(), d)
	c := proxyClient(t, h.httpAddr, nil)
	c.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	tests := []struct {
		name    string
		url     string
		wantErr bool
	}{
		{"allowed", "https://allowed.test:" + port + "/x", false},
		{"denied", "https://denied.test:" + port + "/x", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Get(tc.url)
			if tc.wantErr {
				// net/http reports a CONNECT refusal by its status text: the reason
				if err == nil || !strings.Contains(err.Error(), "not on the test list") {
					t.Fatalf("got %v, want the deny reason", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(body) != "GET /x body=" {
				t.Fatalf("body %q", body)
			}
		})
	}
	calls := d.calls()
	if len(calls) != 2 || calls[0].Scheme != "https" || calls[0].Method != "CONNECT" || calls[0].Path != "" || calls[0].TLS != nil {
		t.Fatalf("calls %+v", calls)
	}
	outs := h.out.wait(t, 2)
	var allowed Outcome
	for _, o := range outs {
		if o.Allowed {
			allowed = o
		}
	}
	if allowed.BytesUp == 0 || allowed.BytesDown == 0 || allowed.Upstream == "" || allowed.Scheme != "https" {
		t.Fatalf("tunnel outcome %+v", allowed)
	}
}

func TestConnectDenyAnswer(t *testing.T) {
	h := startProxy(t, testConfig(), allowHosts())
	_, br, resp := connect(t, h.httpAddr, "denied.test:443", "")
	if resp.StatusCode != 403 || !strings.Contains(resp.Status, "not on the test list") {
		t.Fatalf("status %q", resp.Status)
	}
	if resp.Header.Get("X-Proxy-Error") != "blocked-by-policy" || resp.Header.Get("X-Regate-Decision-Id") != "dec-1" {
		t.Fatalf("headers %v", resp.Header)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), "denied.test:443") || !strings.Contains(string(body), "not on the test list") {
		t.Fatalf("body %q", body)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("connection stays open after a deny")
	}
}

func TestConnectMalformedTargets(t *testing.T) {
	d := allowHosts("allowed.test")
	h := startProxy(t, testConfig(), d)
	tests := []struct{ name, target string }{
		{"no port", "allowed.test"},
		{"port zero", "allowed.test:0"},
		{"port too large", "allowed.test:65536"},
		{"unbracketed IPv6", "::1:443"},
		{"bad name", "a..b:443"},
		{"zoned IPv6", "[fe80::1%25eth0]:443"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawRequest(t, h.httpAddr, "CONNECT "+tc.target+" HTTP/1.1\r\nHost: "+tc.target+"\r\n\r\n")
			if !strings.Contains(statusLine(resp), " 400 ") {
				t.Fatalf("got %q", statusLine(resp))
			}
		})
	}
	t.Run("host header mismatch", func(t *testing.T) {
		resp := rawRequest(t, h.httpAddr, "CONNECT allowed.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n")
		if !strings.Contains(statusLine(resp), " 400 ") {
			t.Fatalf("got %q", statusLine(resp))
		}
	})
	if len(d.calls()) != 0 {
		t.Fatalf("decider called: %+v", d.calls())
	}
}

// helloWith starts a TLS handshake with serverName over c and reports its
// error.
func helloWith(c net.Conn, serverName string) error {
	tc := tls.Client(c, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	return tc.Handshake()
}

func TestConnectSNICheck(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(echoHandler))
	t.Cleanup(up.Close)
	port := portOf(t, up.URL)
	tests := []struct {
		name, sni string
		wantOK    bool
		wantCalls int
	}{
		{"same host", "allowed.test", true, 1},
		{"same host other spelling", "ALLOWED.test.", true, 1},
		{"other allowed host", "other.test", true, 2},
		{"fronting to a denied host", "denied.test", false, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := allowHosts("allowed.test", "other.test")
			logged := &recordingLogger{}
			cfg := testConfig()
			cfg.DecisionLogger = logged
			h := startProxy(t, cfg, d)
			c, _, resp := connect(t, h.httpAddr, "allowed.test:"+port, "")
			if resp.StatusCode != 200 {
				t.Fatalf("CONNECT: %s", resp.Status)
			}
			err := helloWith(c, tc.sni)
			if (err == nil) != tc.wantOK {
				t.Fatalf("handshake error %v, want ok=%v", err, tc.wantOK)
			}
			calls := d.calls()
			if len(calls) != tc.wantCalls {
				t.Fatalf("%d Decide calls, want %d", len(calls), tc.wantCalls)
			}
			if tc.wantCalls == 2 {
				in := calls[1]
				if in.Host != tc.sni || in.TLS == nil || in.TLS.SNI != tc.sni || in.Scheme != "https" || in.Port != calls[0].Port {
					t.Fatalf("TLS re-check input %+v", in)
				}
			}
			if !tc.wantOK {
				o := h.out.wait(t, 1)[0]
				if o.Allowed || !strings.Contains(o.Reason, "not on the test list") || !errors.Is(o.Err, errTLSCheck) {
					t.Fatalf("outcome %+v", o)
				}
			}
		})
	}
}

func TestTunnelServerFirstAndHalfClose(t *testing.T) {
	banner := tcpUpstream(t, func(c net.Conn) {
		_, _ = io.WriteString(c, "220 hello\r\n")
		b, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, "echo "+b)
	})
	counter := tcpUpstream(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c) // until the client half-closes
		fmt.Fprintf(c, "got %d", n)
	})
	h := startProxy(t, testConfig(), allowHosts("allowed.test"))
	t.Run("server speaks first", func(t *testing.T) {
		c, br, resp := connect(t, h.httpAddr, "allowed.test:"+banner, "")
		if resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		line, err := br.ReadString('\n')
		if err != nil || line != "220 hello\r\n" {
			t.Fatalf("banner %q %v", line, err)
		}
		_, _ = io.WriteString(c, "ping\n")
		if line, _ = br.ReadString('\n'); line != "echo ping\n" {
			t.Fatalf("echo %q", line)
		}
	})
	t.Run("half close", func(t *testing.T) {
		c, br, resp := connect(t, h.httpAddr, "allowed.test:"+counter, "")
		if resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
		_, _ = c.Write(make([]byte, 100000))
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		got, err := io.ReadAll(br)
		if err != nil || string(got) != "got 100000" {
			t.Fatalf("got %q %v", got, err)
		}
	})
}

func TestProxyLoopRefused(t *testing.T) {
	logged := &recordingLogger{}
	cfg := testConfig()
	cfg.DecisionLogger = logged
	h := startProxy(t, cfg, DeciderFunc(func(context.Context, engine.Input) (engine.Decision, error) {
		return engine.Decision{Allow: true, ID: "allow-all"}, nil
	}))
	for _, addr := range []string{h.httpAddr, h.socksAddr} {
		t.Run("CONNECT "+addr, func(t *testing.T) {
			_, _, resp := connect(t, h.httpAddr, addr, "")
			if resp.StatusCode != 403 || !strings.Contains(resp.Status, "proxy's own listening address") {
				t.Fatalf("got %s", resp.Status)
			}
			if id := resp.Header.Get("X-Regate-Decision-Id"); id != "logged-1" && id != "logged-2" {
				t.Fatalf("decision id %q, want the logger's", id)
			}
		})
	}
	t.Run("plain GET to itself", func(t *testing.T) {
		resp := rawRequest(t, h.httpAddr, "GET http://"+h.httpAddr+"/ HTTP/1.1\r\nHost: "+h.httpAddr+"\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(resp, "HTTP/1.1 403") || !strings.Contains(resp, "blocked-by-policy") {
			t.Fatalf("got %q", resp)
		}
	})
	if got := logged.rules(); len(got) != 3 || got[0] != "ssrf:proxy-loop" {
		t.Fatalf("logged %v", got)
	}
}

// recordingLogger is a DecisionLogger that remembers rules.
type recordingLogger struct {
	mu  sync.Mutex
	got []engine.Decision
}

func (l *recordingLogger) LogDecision(_ engine.Input, d engine.Decision) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, d)
	return fmt.Sprintf("logged-%d", len(l.got))
}

func (l *recordingLogger) rules() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, d := range l.got {
		out = append(out, d.Rule)
	}
	return out
}

func TestSNIDenyForwardsNothing(t *testing.T) {
	got := make(chan int, 1)
	port := tcpUpstream(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		got <- int(n)
	})
	h := startProxy(t, testConfig(), allowHosts("allowed.test"))
	hello := records(unrecord(buildHello([]string{"denied.test"})), 20)
	tests := []struct {
		name  string
		parts int
	}{
		{"one write", 1},
		{"split over reads", 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, resp := connect(t, h.httpAddr, "allowed.test:"+port, "")
			if resp.StatusCode != 200 {
				t.Fatal(resp.Status)
			}
			step := len(hello)/tc.parts + 1
			for i := 0; i < len(hello); i += step {
				_, _ = c.Write(hello[i:min(i+step, len(hello))])
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case n := <-got:
				if n != 0 {
					t.Fatalf("upstream received %d bytes of a refused ClientHello", n)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("upstream connection not closed")
			}
		})
	}
}
