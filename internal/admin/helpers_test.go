package admin

import (
	"context"
	"encoding/json"
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
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/childenv"
	"github.com/regate/regate/internal/enginetest"
	"github.com/regate/regate/policies"
	"github.com/regate/regate/proxy"
)

// fixture is a real engine, proxy and admin API, on 127.0.0.1 and a unix
// socket, with an httptest upstream reachable as allowed.test and
// other.test.
type fixture struct {
	engine   *engine.Engine
	proxy    *proxy.Proxy
	attempts *attempt.Registry
	reg      *prometheus.Registry
	admin    *Server
	unix     *client // over the unix socket, no token
	tcp      *client // over TCP, with the token
	socket   string
	tcpAddr  string
	token    string
	proxyURL string // the HTTP proxy, http://127.0.0.1:PORT
	upPort   string
}

type fixtureOpts struct {
	policies    []string // engine.Config.Policies; nil: the embedded default
	ready       func() error
	readTimeout time.Duration // of the admin server; 0: its default
	listeners   AttemptListeners
}

func testLogger() *slog.Logger {
	if os.Getenv("ADMIN_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func newFixture(t *testing.T, o fixtureOpts) *fixture {
	t.Helper()
	f := &fixture{attempts: attempt.NewRegistry(), reg: prometheus.NewRegistry(), token: "0123456789abcdef0123456789abcdef"}
	f.engine = startEngine(t, o.policies, f.reg)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "upstream: %s %s\n", r.Method, r.Host)
	}))
	t.Cleanup(up.Close)
	f.upPort = up.URL[strings.LastIndexByte(up.URL, ':')+1:]
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	p, err := proxy.New(proxy.Config{
		Logger: testLogger(), Attempts: f.attempts, AllowAnonymous: true,
		AllowCIDRs:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Hosts:          map[string][]netip.Addr{"allowed.test": lo, "other.test": lo},
		DecisionLogger: f.engine, Registerer: f.reg,
		DialTimeout: 2 * time.Second, HeaderTimeout: 2 * time.Second,
	}, f.engine)
	if err != nil {
		t.Fatal(err)
	}
	f.proxy = p
	httpLn := tcpListen(t)
	f.proxyURL = "http://" + httpLn.Addr().String()
	go func() { _ = p.ServeHTTPProxy(httpLn) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = p.Shutdown(ctx)
	})
	f.startAdmin(t, httpLn.Addr().String(), o)
	return f
}

func (f *fixture) startAdmin(t *testing.T, proxyHTTP string, o fixtureOpts) {
	t.Helper()
	s, err := New(Config{
		Engine: f.engine, Attempts: f.attempts, Token: f.token,
		Listeners:    map[string]string{"http": proxyHTTP},
		ChildProxies: []childenv.Listener{{Kind: childenv.HTTP, Addr: proxyHTTP}},
		Gatherer:     f.reg, Registerer: f.reg, Logger: testLogger(), Ready: o.ready,
		Version: "test", SweepInterval: 50 * time.Millisecond, AttemptListeners: o.listeners,
	})
	if err != nil {
		t.Fatal(err)
	}
	if o.readTimeout > 0 {
		s.srv.ReadTimeout = o.readTimeout
	}
	ctx := context.Background()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f.admin = s
	f.socket = filepath.Join(shortTempDir(t), "admin.sock")
	ul, err := Listen(ctx, "unix:"+f.socket)
	if err != nil {
		t.Fatal(err)
	}
	tl, err := Listen(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.proxy.Protect(tl.Addr())
	f.tcpAddr = tl.Addr().String()
	for _, l := range []net.Listener{ul, tl} {
		go func() { _ = s.Serve(l) }()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	f.unix = unixClient(f.socket, "")
	f.tcp = &client{base: "http://" + f.tcpAddr, token: f.token, c: &http.Client{Timeout: 10 * time.Second}}
}

// shortTempDir is a temporary directory with a short path (unix socket
// paths are limited to 107 bytes).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "adm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func tcpListen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func startEngine(t *testing.T, pols []string, reg prometheus.Registerer) *engine.Engine {
	t.Helper()
	// These tests are about the API, not decision speed: under -race on a
	// loaded machine one evaluation can pass the default 100 ms (a deny).
	return enginetest.Start(t, engine.Config{Default: policies.FS, Policies: pols, Logger: testLogger(), Registerer: reg,
		DecisionTimeout: 10 * time.Second})
}

// client speaks to the admin API.
type client struct {
	base, token string
	c           *http.Client
}

func unixClient(path, token string) *client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &client{base: "http://admin", token: token, c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

// answer is a finished admin response.
type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(a.body), v); err != nil {
		t.Fatalf("decoding %q: %v", a.body, err)
	}
}

// errorCode is the "code" of an OPA error body, "" if it is none.
func (a answer) errorCode() string {
	var e struct{ Code, Message string }
	if json.Unmarshal([]byte(a.body), &e) != nil || e.Message == "" {
		return ""
	}
	return e.Code
}

func (c *client) do(t *testing.T, method, path, body string, hdr ...string) answer {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// want fails unless a has status.
func (a answer) want(t *testing.T, status int) answer {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d; body %s", a.status, status, a.body)
	}
	return a
}

// get fetches http://HOST:upPort/ through the proxy as user (nil:
// anonymous) and returns the status.
func (f *fixture) get(t *testing.T, host string, user *url.Userinfo) int {
	t.Helper()
	pu, _ := url.Parse(f.proxyURL)
	pu.User = user
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu), DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + host + ":" + f.upPort + "/")
	if err != nil {
		t.Fatalf("GET %s through the proxy: %v", host, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// wantGet fails unless fetching host as user answers status.
func (f *fixture) wantGet(t *testing.T, host string, user *url.Userinfo, status int) {
	t.Helper()
	if got := f.get(t, host, user); got != status {
		t.Fatalf("GET %s as %v through the proxy: %d, want %d", host, user, got, status)
	}
}

// writePolicy writes a one-file policy directory and returns it.
func writePolicy(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

var errNotYet = errors.New("not yet")

// eventually retries f for up to 5 s.
func eventually(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
