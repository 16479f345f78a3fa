package proxy

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/attempt"
)

// fakeDecider allows the hosts in allow, denies everything else, and
// records every input.
type fakeDecider struct {
	mu     sync.Mutex
	inputs []engine.Input
	allow  map[string]bool
	fn     func(engine.Input) (engine.Decision, error) // overrides allow when set
}

func allowHosts(hosts ...string) *fakeDecider {
	d := &fakeDecider{allow: map[string]bool{}}
	for _, h := range hosts {
		d.allow[h] = true
	}
	return d
}

func (d *fakeDecider) Decide(_ context.Context, in engine.Input) (engine.Decision, error) {
	d.mu.Lock()
	d.inputs = append(d.inputs, in)
	n := len(d.inputs)
	d.mu.Unlock()
	if d.fn != nil {
		return d.fn(in)
	}
	id := fmt.Sprintf("dec-%d", n)
	if d.allow[in.Host] {
		return engine.Decision{Allow: true, Reason: "allowed by test", ID: id}, nil
	}
	return engine.Decision{Reason: "host " + in.Host + " is not on the test list", Rule: "test", ID: id}, nil
}

func (d *fakeDecider) calls() []engine.Input {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.inputs)
}

func (d *fakeDecider) hosts() []string {
	var out []string
	for _, in := range d.calls() {
		out = append(out, in.Host)
	}
	return out
}

// outcomes collects Outcome records.
type outcomes struct {
	mu  sync.Mutex
	got []Outcome
}

func (o *outcomes) add(x Outcome) {
	o.mu.Lock()
	o.got = append(o.got, x)
	o.mu.Unlock()
}

func (o *outcomes) wait(t *testing.T, n int) []Outcome {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		o.mu.Lock()
		got := slices.Clone(o.got)
		o.mu.Unlock()
		if len(got) >= n {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("waited for %d outcomes", n)
	return nil
}

var loopbackCIDR = netip.MustParsePrefix("127.0.0.0/8")

// testConfig opens 127.0.0.0/8 (upstreams live there) and pins the test
// names to 127.0.0.1.
func testConfig() Config {
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	return Config{
		Logger:         testLogger(),
		AllowAnonymous: true,
		AllowCIDRs:     []netip.Prefix{loopbackCIDR},
		Hosts:          map[string][]netip.Addr{"allowed.test": lo, "denied.test": lo, "other.test": lo},
		HeaderTimeout:  2 * time.Second,
		DialTimeout:    2 * time.Second,
		IdleTimeout:    5 * time.Second,
	}
}

func testLogger() *slog.Logger {
	if os.Getenv("PROXY_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// harness is a running proxy with both listeners.
type harness struct {
	p         *Proxy
	httpAddr  string
	socksAddr string
	out       *outcomes
}

func startProxy(t *testing.T, cfg Config, d Decider) *harness {
	t.Helper()
	h := &harness{out: &outcomes{}}
	if cfg.OnOutcome == nil {
		cfg.OnOutcome = h.out.add
	}
	p, err := New(cfg, d)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	h.p = p
	httpLn := listen(t)
	socksLn := listen(t)
	h.httpAddr, h.socksAddr = httpLn.Addr().String(), socksLn.Addr().String()
	errs := make(chan error, 2)
	go func() { errs <- p.ServeHTTPProxy(httpLn) }()
	go func() { errs <- p.ServeSOCKS(socksLn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
		for range 2 {
			// ErrClosed: Shutdown ran before Serve started
			if err := <-errs; err != nil && !errors.Is(err, ErrClosed) {
				t.Errorf("Serve returned %v after Shutdown", err)
			}
		}
	})
	return h
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// echoUpstream answers with what it received.
func echoUpstream(t *testing.T) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(echoHandler))
	t.Cleanup(s.Close)
	return s
}

func echoHandler(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	w.Header().Set("X-Seen-Host", r.Host)
	w.Header().Set("X-Seen-Proxy-Authorization", r.Header.Get("Proxy-Authorization"))
	w.Header().Set("X-Seen-Connection", r.Header.Get("Connection"))
	w.Header().Set("X-Seen-X-Hop", r.Header.Get("X-Hop"))
	w.Header().Set("X-Seen-Keep-Alive", r.Header.Get("Keep-Alive"))
	fmt.Fprintf(w, "%s %s body=%s", r.Method, r.URL.Path, body)
}

// portOf returns the port of a "host:port" or URL.
func portOf(t *testing.T, s string) string {
	t.Helper()
	if u, err := url.Parse(s); err == nil && u.Host != "" {
		s = u.Host
	}
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// proxyClient is an http.Client using the proxy at addr (with optional
// credentials in the proxy URL).
func proxyClient(t *testing.T, addr string, user *url.Userinfo) *http.Client {
	t.Helper()
	pu := &url.URL{Scheme: "http", Host: addr, User: user}
	return &http.Client{
		Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true},
		Timeout:   10 * time.Second,
	}
}

// rawRequest writes req on a fresh connection to addr and returns the
// whole answer (until the proxy closes or a short timeout).
func rawRequest(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, _ := io.ReadAll(c)
	return string(b)
}

func statusLine(resp string) string {
	line, _, _ := strings.Cut(resp, "\r\n")
	return line
}

func registry(t *testing.T, as ...attempt.Attempt) *attempt.Registry {
	t.Helper()
	r := attempt.NewRegistry()
	for _, a := range as {
		if err := r.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// failingResolver fails every lookup, as for NXDOMAIN.
type failingResolver struct{}

func (failingResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

// mapResolver answers from a map.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := m[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

func attemptFixture(id, token string) attempt.Attempt {
	return attempt.Attempt{ID: id, Token: token, Labels: map[string]string{"team": "t"}, Allow: []string{"extra.test"}}
}

func bufioReader(c net.Conn) *bufio.Reader { return bufio.NewReader(c) }

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}
