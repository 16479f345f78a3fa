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
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/regate/regate/engine"
)

// wireAnswer is a source's answer as its client reads it.
type wireAnswer struct {
	ok   bool
	code int    // HTTP status, or SOCKS5 reply code
	text string // HTTP status text; "" on SOCKS5
	id   string // X-Regate-Decision-Id; "" on SOCKS5
}

// source is one way into the pipeline as a real client drives it. A new
// source joins the table below with one row.
type source struct {
	name     string
	listener string
	scheme   string
	// open asks the proxy of h for a tunnel to target and returns the
	// connection (nil unless established) and the answer.
	open func(t *testing.T, h *harness, target string) (net.Conn, wireAnswer)
	// want is the expected answer code of each refusal class.
	want map[Class]int
}

var sources = []source{
	{
		name: "HTTP CONNECT", listener: ListenerHTTP, scheme: "https",
		open: func(t *testing.T, h *harness, target string) (net.Conn, wireAnswer) {
			return openConnect(t, h.httpAddr, target)
		},
		want: map[Class]int{ClassDenied: 403, ClassLimit: 503, ClassTimeout: 504, ClassRefused: 502, ClassDNS: 502},
	},
	{
		// The listeners of one attempt (serve's "listeners": true) are
		// the same sources, bound.
		name: "HTTP CONNECT, bound listener", listener: ListenerHTTP, scheme: "https",
		open: func(t *testing.T, h *harness, target string) (net.Conn, wireAnswer) {
			return openConnect(t, boundListener(t, h, false), target)
		},
		want: map[Class]int{ClassDenied: 403, ClassLimit: 503, ClassTimeout: 504, ClassRefused: 502, ClassDNS: 502},
	},
	{
		name: "SOCKS5", listener: ListenerSOCKS5, scheme: "socks5",
		open: func(t *testing.T, h *harness, target string) (net.Conn, wireAnswer) {
			return openSOCKS(t, h.socksAddr, target)
		},
		want: map[Class]int{ClassDenied: 0x02, ClassLimit: 0x01, ClassTimeout: 0x06, ClassRefused: 0x05, ClassDNS: 0x04},
	},
	{
		name: "SOCKS5, bound listener", listener: ListenerSOCKS5, scheme: "socks5",
		open: func(t *testing.T, h *harness, target string) (net.Conn, wireAnswer) {
			return openSOCKS(t, boundListener(t, h, true), target)
		},
		want: map[Class]int{ClassDenied: 0x02, ClassLimit: 0x01, ClassTimeout: 0x06, ClassRefused: 0x05, ClassDNS: 0x04},
	},
	{
		// A source of this test's own, fed through Proxy.Handle: what a
		// new source (a transparent flow) brings is its handshake and its
		// answerer, nothing more.
		name: "line source", listener: "line", scheme: "tcp",
		open: openLineSource,
		want: lineCodes,
	},
}

// boundAttempt is the attempt of the bound listeners' sources.
const boundAttempt = "bound-source"

// boundListener serves a listener of h's proxy bound to boundAttempt
// (registered on first use) and returns its address.
func boundListener(t *testing.T, h *harness, socks bool) string {
	t.Helper()
	_ = h.p.cfg.Attempts.Add(attemptFixture(boundAttempt, "tok"))
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	serve := h.p.ServeHTTPProxyFor
	if socks {
		serve = h.p.ServeSOCKSFor
	}
	go func() { _ = serve(ln, boundAttempt) }()
	return ln.Addr().String()
}

// openConnect asks the HTTP listener at addr for a tunnel to target.
func openConnect(t *testing.T, addr, target string) (net.Conn, wireAnswer) {
	t.Helper()
	c, br, resp := connect(t, addr, target, "")
	ans := wireAnswer{ok: resp.StatusCode == 200, code: resp.StatusCode, id: resp.Header.Get(HeaderDecisionID)}
	_, ans.text, _ = strings.Cut(resp.Status, " ")
	if !ans.ok {
		return nil, ans
	}
	return &bufferedConn{Conn: c, r: br}, ans
}

// openSOCKS asks the SOCKS5 listener at addr for a tunnel to target.
func openSOCKS(t *testing.T, addr, target string) (net.Conn, wireAnswer) {
	t.Helper()
	host, portStr, _ := net.SplitHostPort(target)
	port, _ := strconv.Atoi(portStr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := append([]byte{5, 1, 0, 3, byte(len(host))}, host...)
	req = append(req, byte(port>>8), byte(port))
	_, _ = c.Write(append([]byte{5, 1, 0}, req...))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	reply := make([]byte, 2+4+4+2) // greeting answer, then a reply with an IPv4 address
	if _, err := io.ReadFull(br, reply[:2]); err != nil {
		t.Fatalf("reading greeting answer: %v", err)
	}
	if _, err := io.ReadFull(br, reply[2:]); err != nil {
		t.Fatalf("reading reply: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	ans := wireAnswer{ok: reply[3] == replySucceeded, code: int(reply[3])}
	if !ans.ok {
		return nil, ans
	}
	return &bufferedConn{Conn: c, r: br}, ans
}

// lineCodes are the line source's answer codes.
var lineCodes = map[Class]int{ClassDenied: 1, ClassLimit: 2, ClassTimeout: 3, ClassRefused: 4, ClassDNS: 5, ClassClosing: 6, ClassUnreachable: 7, ClassInternal: 8}

// openLineSource serves one connection whose handshake is a line
// "host:port\n", answered "OK\n" or "NO <code> <decision id>\n".
func openLineSource(t *testing.T, h *harness, target string) (net.Conn, wireAnswer) {
	ln := listen(t)
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		host, portStr, _ := net.SplitHostPort(strings.TrimSpace(line))
		port, _ := strconv.Atoi(portStr)
		dest, derr := NewDest(host, port)
		who, ierr := h.p.Identify(Credentials{})
		if err != nil || derr != nil || ierr != nil {
			_ = c.Close()
			return
		}
		h.p.Handle(h.p.baseCtx, Conn{Client: c, Dest: dest, Who: who, Listener: "line", Scheme: "tcp", Answer: &lineAnswer{c: c, br: br}})
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "%s\n", target)
	br := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("reading the line answer: %v", err)
	}
	_ = c.SetReadDeadline(time.Time{})
	if line == "OK\n" {
		return &bufferedConn{Conn: c, r: br}, wireAnswer{ok: true}
	}
	var ans wireAnswer
	if _, err := fmt.Sscanf(line, "NO %d %s", &ans.code, &ans.id); err != nil {
		t.Fatalf("line answer %q: %v", line, err)
	}
	return nil, ans
}

type lineAnswer struct {
	c  net.Conn
	br *bufio.Reader
}

func (a *lineAnswer) Refuse(r Refusal) error {
	defer a.c.Close()
	id := r.Decision.ID
	if id == "" {
		id = "-"
	}
	_, err := fmt.Fprintf(a.c, "NO %d %s\n", lineCodes[r.Class], id)
	return err
}

func (a *lineAnswer) Established(net.Conn) (net.Conn, []byte, error) {
	if _, err := io.WriteString(a.c, "OK\n"); err != nil {
		return a.c, nil, err
	}
	buffered, _ := a.br.Peek(a.br.Buffered())
	return a.c, buffered, nil
}

// bufferedConn reads through the reader that read the source's answer.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *bufferedConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// assertClosed checks that the proxy closed c.
func assertClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second)) // returns at the close; long only under load
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("connection not closed by the proxy: %v", err)
	}
}

// TestPipelineSources runs every behaviour of the pipeline against every
// source: deny answers, the SSRF guard, the TLS check, limits, upstream
// failures and outcome records.
func TestPipelineSources(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			t.Run("policy deny", func(t *testing.T) { testPolicyDeny(t, src) })
			t.Run("SSRF guard", func(t *testing.T) { testSSRFDeny(t, src) })
			t.Run("SNI fronting", func(t *testing.T) { testSNIFronting(t, src) })
			t.Run("TLS check fails closed", func(t *testing.T) { testTLSCheckFailsClosed(t, src) })
			t.Run("tunnel limit", func(t *testing.T) { testTunnelLimit(t, src) })
			t.Run("upstream failures", func(t *testing.T) { testUpstreamFailures(t, src) })
			t.Run("outcome of a tunnel", func(t *testing.T) { testTunnelOutcome(t, src) })
		})
	}
}

func testPolicyDeny(t *testing.T, src source) {
	d := allowHosts()
	h := startProxy(t, testConfig(), d)
	_, ans := src.open(t, h, "denied.test:443")
	if ans.ok || ans.code != src.want[ClassDenied] {
		t.Fatalf("answer %+v, want code %#x", ans, src.want[ClassDenied])
	}
	if src.listener == ListenerHTTP && (ans.id != "dec-1" || !strings.Contains(ans.text, "not on the test list")) {
		t.Fatalf("answer %+v, want the decision id and the reason", ans)
	}
	in := d.calls()[0]
	if in.Scheme != src.scheme || in.Method != "CONNECT" || in.Client.Listener != src.listener {
		t.Fatalf("input %+v", in)
	}
	o := h.out.wait(t, 1)[0]
	if o.Allowed || o.DecisionID != "dec-1" || o.Listener != src.listener || o.Scheme != src.scheme || o.Err != nil || o.Upstream != "" {
		t.Fatalf("outcome %+v", o)
	}
}

// testSSRFDeny: the guard refuses loopback after the policy's allow, and
// after an audited allow (report-only mode never relaxes the guard).
func testSSRFDeny(t *testing.T, src source) {
	port := tcpUpstream(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
	audited := &fakeDecider{fn: func(engine.Input) (engine.Decision, error) {
		return engine.Decision{Allow: true, Audit: true, Reason: "no rule allows allowed.test", Rule: "default", ID: "audit-1"}, nil
	}}
	for i, d := range []*fakeDecider{allowHosts("allowed.test"), audited} {
		logged := &recordingLogger{}
		cfg := testConfig()
		cfg.AllowCIDRs = nil
		cfg.DecisionLogger = logged
		h := startProxy(t, cfg, d)
		_, ans := src.open(t, h, "allowed.test:"+port)
		if ans.ok || ans.code != src.want[ClassDenied] {
			t.Fatalf("answer %+v", ans)
		}
		if src.listener == ListenerHTTP && ans.id != "logged-1" {
			t.Fatalf("decision id %q, want the logger's", ans.id)
		}
		if got := logged.rules(); len(got) != 1 || got[0] != "ssrf:loopback" {
			t.Fatalf("logged %v", got)
		}
		o := h.out.wait(t, 1)[0]
		var se *ssrfError
		if o.Allowed || o.Rule != "ssrf:loopback" || o.DecisionID != "logged-1" || !errors.As(o.Err, &se) {
			t.Fatalf("decider %d: outcome %+v", i, o)
		}
		if v := testutil.ToFloat64(h.p.m.ownDenies.WithLabelValues("ssrf:loopback")); v != 1 {
			t.Fatalf("proxy denies = %v", v)
		}
	}
}

func testSNIFronting(t *testing.T, src source) {
	up := httptest.NewTLSServer(http.HandlerFunc(echoHandler))
	t.Cleanup(up.Close)
	d := allowHosts("allowed.test")
	h := startProxy(t, testConfig(), d)
	c, ans := src.open(t, h, "allowed.test:"+portOf(t, up.URL))
	if !ans.ok {
		t.Fatalf("answer %+v", ans)
	}
	tc := tls.Client(c, &tls.Config{ServerName: "denied.test", InsecureSkipVerify: true})
	_ = tc.SetDeadline(time.Now().Add(3 * time.Second))
	if err := tc.Handshake(); err == nil {
		t.Fatal("handshake with a denied SNI succeeded")
	}
	if hosts := d.hosts(); strings.Join(hosts, ",") != "allowed.test,denied.test" {
		t.Fatalf("decided %v", hosts)
	}
	if in := d.calls()[1]; in.TLS == nil || in.TLS.SNI != "denied.test" || in.Scheme != src.scheme {
		t.Fatalf("TLS re-check input %+v", in)
	}
	o := h.out.wait(t, 1)[0]
	if o.Allowed || !errors.Is(o.Err, errTLSCheck) || o.Listener != src.listener || !strings.Contains(o.Reason, "not on the test list") {
		t.Fatalf("outcome %+v", o)
	}
}

func testTLSCheckFailsClosed(t *testing.T, src source) {
	port := tcpUpstream(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	cfg := testConfig()
	cfg.TLSPeekTimeout = 200 * time.Millisecond
	tests := []struct {
		name string
		send []byte
	}{
		{"truncated hello then silence", []byte{0x16, 0x03, 0x01, 0x00, 0x40, 0x01}},
		{"not a ClientHello", []byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00}},
		{"bad record version", []byte{0x16, 0x09, 0x01, 0x00, 0x01, 0x01}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			logged := &recordingLogger{}
			cfg.DecisionLogger = logged
			h := startProxy(t, cfg, allowHosts("allowed.test"))
			c, ans := src.open(t, h, "allowed.test:"+port)
			if !ans.ok {
				t.Fatalf("answer %+v", ans)
			}
			_, _ = c.Write(tc.send)
			assertClosed(t, c)
			if got := logged.rules(); len(got) != 1 || got[0] != ruleTLSCheck {
				t.Fatalf("logged %v", got)
			}
			o := h.out.wait(t, 1)[0]
			if o.Allowed || o.Rule != ruleTLSCheck || o.DecisionID != "logged-1" || !errors.Is(o.Err, errTLSCheck) {
				t.Fatalf("outcome %+v", o)
			}
		})
	}
}

func testTunnelLimit(t *testing.T, src source) {
	port := tcpUpstream(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
	logged := &recordingLogger{}
	cfg := testConfig()
	cfg.MaxTunnels = 1
	cfg.DecisionLogger = logged
	h := startProxy(t, cfg, allowHosts("allowed.test"))
	c, ans := src.open(t, h, "allowed.test:"+port)
	if !ans.ok {
		t.Fatalf("first tunnel: %+v", ans)
	}
	if n := h.p.ActiveTunnels(); n != 1 {
		t.Fatalf("ActiveTunnels = %d", n)
	}
	_, ans2 := src.open(t, h, "allowed.test:"+port)
	if ans2.ok || ans2.code != src.want[ClassLimit] {
		t.Fatalf("second tunnel: %+v", ans2)
	}
	if src.listener == ListenerHTTP && ans2.id != "logged-1" {
		t.Fatalf("second tunnel: decision id %q, want the logger's", ans2.id)
	}
	if got := logged.rules(); len(got) != 1 || got[0] != ruleTunnelLimit {
		t.Fatalf("logged %v", got)
	}
	_ = c.Close()
	waitFor(t, func() bool { return h.p.ActiveTunnels() == 0 })
	if _, ans3 := src.open(t, h, "allowed.test:"+port); !ans3.ok {
		t.Fatalf("after close: %+v", ans3)
	}
}

func testUpstreamFailures(t *testing.T, src source) {
	closed := listen(t)
	closedPort := portOf(t, closed.Addr().String())
	closed.Close()
	cfg := testConfig()
	cfg.Resolver = failingResolver{}
	h := startProxy(t, cfg, allowHosts("allowed.test", "nxdomain.test"))
	tests := []struct {
		name, target string
		class        Class
		cause        string // in the CONNECT status text
	}{
		{"refused", "allowed.test:" + closedPort, ClassRefused, "connection refused"},
		{"DNS failure", "nxdomain.test:443", ClassDNS, "resolving nxdomain.test"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, ans := src.open(t, h, tc.target)
			if ans.ok || ans.code != src.want[tc.class] {
				t.Fatalf("answer %+v, want code %#x", ans, src.want[tc.class])
			}
			if src.listener == ListenerHTTP && !strings.Contains(ans.text, tc.cause) {
				t.Fatalf("status text %q, want the cause %q", ans.text, tc.cause)
			}
			o := h.out.wait(t, i+1)[i]
			if !o.Allowed || refusalClass(o.Err) != tc.class {
				t.Fatalf("outcome %+v", o)
			}
		})
	}
}

func testTunnelOutcome(t *testing.T, src source) {
	port := tcpUpstream(t, func(c net.Conn) {
		b := make([]byte, 6)
		if _, err := io.ReadFull(c, b); err == nil {
			_, _ = fmt.Fprintf(c, "echo %s", b)
		}
	})
	h := startProxy(t, testConfig(), allowHosts("allowed.test"))
	c, ans := src.open(t, h, "allowed.test:"+port)
	if !ans.ok {
		t.Fatalf("answer %+v", ans)
	}
	_, _ = io.WriteString(c, "hello\n") // a line protocol: relayed raw
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "echo hello\n" {
		t.Fatalf("got %q %v", got, err)
	}
	_ = c.Close()
	o := h.out.wait(t, 1)[0]
	want := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(mustAtoi(t, port))).String()
	if !o.Allowed || o.BytesUp != 6 || o.BytesDown != 11 || o.Upstream != want || o.Listener != src.listener ||
		o.Scheme != src.scheme || o.Method != "CONNECT" || o.DecisionID != "dec-1" || o.Err != nil {
		t.Fatalf("outcome %+v", o)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRefusalTablesAreComplete: every class has an answer on every
// listener.
func TestRefusalTablesAreComplete(t *testing.T) {
	for _, c := range []Class{ClassDenied, ClassLimit, ClassClosing, ClassTimeout, ClassRefused, ClassDNS, ClassUnreachable, ClassInternal} {
		if _, ok := httpStatus[c]; !ok {
			t.Errorf("no HTTP status for %s", c)
		}
		if _, ok := socksReply[c]; !ok {
			t.Errorf("no SOCKS5 reply for %s", c)
		}
	}
}

// TestDialSeamGetsOnlyCheckedAddresses: Config.Dial is called with the
// addresses the guard passed, on every path (plain, CONNECT, SOCKS5).
func TestDialSeamGetsOnlyCheckedAddresses(t *testing.T) {
	up := echoUpstream(t)
	port := portOf(t, up.URL)
	var mu sync.Mutex
	var dialed []string
	cfg := testConfig()
	cfg.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	cfg.Hosts["allowed.test"] = []netip.Addr{netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")}
	cfg.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dialed = append(dialed, network+" "+addr)
		mu.Unlock()
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	h := startProxy(t, cfg, allowHosts("allowed.test"))
	resp := rawRequest(t, h.httpAddr, "GET http://allowed.test:"+port+"/p HTTP/1.1\r\nHost: allowed.test:"+port+"\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("plain: %q", statusLine(resp))
	}
	for _, src := range sources {
		if c, ans := src.open(t, h, "allowed.test:"+port); !ans.ok {
			t.Fatalf("%s: %+v", src.name, ans)
		} else {
			_ = c.Close()
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(dialed) != 1+len(sources) {
		t.Fatalf("dialed %v", dialed)
	}
	for _, d := range dialed {
		if d != "tcp 127.0.0.1:"+port {
			t.Fatalf("dialed %q, not only the checked address", d)
		}
	}
}

type closeRecorder struct {
	mu     sync.Mutex
	closed bool
}

func (c *closeRecorder) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func TestAddSourceClosedByShutdown(t *testing.T) {
	p, err := New(testConfig(), allowHosts())
	if err != nil {
		t.Fatal(err)
	}
	kept, removed := &closeRecorder{}, &closeRecorder{}
	if _, err := p.AddSource(kept); err != nil {
		t.Fatal(err)
	}
	remove, err := p.AddSource(removed)
	if err != nil {
		t.Fatal(err)
	}
	remove()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if !kept.closed || removed.closed {
		t.Fatalf("closed: kept %v, removed %v", kept.closed, removed.closed)
	}
	if _, err := p.AddSource(&closeRecorder{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("AddSource after Shutdown: %v", err)
	}
}
