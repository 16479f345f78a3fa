package proxy

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/regate/regate/engine"
)

func TestPlainHTTPDecision(t *testing.T) {
	up := echoUpstream(t)
	port := portOf(t, up.URL)
	d := allowHosts("allowed.test")
	h := startProxy(t, testConfig(), d)
	c := proxyClient(t, h.httpAddr, nil)

	tests := []struct {
		name     string
		url      string
		wantCode int
		wantBody string
	}{
		{"allowed", "http://allowed.test:" + port + "/a/b?q=1", 200, "GET /a/b body="},
		{"denied", "http://denied.test:" + port + "/", 403, "denied.test:" + port},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.wantCode || !strings.Contains(string(body), tc.wantBody) {
				t.Fatalf("got %d %q, want %d containing %q", resp.StatusCode, body, tc.wantCode, tc.wantBody)
			}
			if tc.wantCode == 403 {
				if resp.Header.Get("X-Proxy-Error") != "blocked-by-policy" || resp.Header.Get("X-Regate-Decision-Id") == "" {
					t.Fatalf("deny headers missing: %v", resp.Header)
				}
				if !strings.Contains(string(body), "not on the test list") {
					t.Fatalf("deny body lacks the reason: %q", body)
				}
			}
		})
	}
	calls := d.calls()
	if len(calls) != 2 {
		t.Fatalf("%d Decide calls, want 2", len(calls))
	}
	in := calls[0]
	want := engine.Input{Host: "allowed.test", Scheme: "http", Method: "GET", Path: "/a/b"}
	if in.Host != want.Host || in.Scheme != want.Scheme || in.Method != want.Method || in.Path != want.Path ||
		in.HostIsIP || in.AttemptID != "" || in.Client == nil || in.Client.Listener != "http" || in.Client.Addr == "" {
		t.Fatalf("input %+v client %+v", in, in.Client)
	}
	outs := h.out.wait(t, 2)
	for _, o := range outs {
		switch o.Host {
		case "allowed.test":
			if !o.Allowed || o.Upstream == "" || o.BytesDown == 0 || o.DecisionID == "" || o.Listener != "http" {
				t.Fatalf("allowed outcome %+v", o)
			}
		case "denied.test":
			if o.Allowed || o.Upstream != "" || o.Reason == "" {
				t.Fatalf("denied outcome %+v", o)
			}
		}
	}
}

func TestPlainHTTPStripsProxyAndHopHeaders(t *testing.T) {
	up := echoUpstream(t)
	h := startProxy(t, testConfig(), allowHosts("allowed.test"))
	req := "GET http://allowed.test:" + portOf(t, up.URL) + "/ HTTP/1.1\r\n" +
		"Host: allowed.test:" + portOf(t, up.URL) + "\r\n" +
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n" +
		"Connection: close\r\nConnection: X-Hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\n\r\n"
	resp := rawRequest(t, h.httpAddr, req)
	// credentials for an unknown attempt are refused, never forwarded
	if !strings.HasPrefix(resp, "HTTP/1.1 407") {
		t.Fatalf("unknown credentials: got %q", statusLine(resp))
	}
	req = strings.Replace(req, "Proxy-Authorization: Basic Zm9vOmJhcg==\r\n", "", 1)
	resp = rawRequest(t, h.httpAddr, req)
	if !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("got %q", resp)
	}
	for _, hdr := range []string{"X-Seen-X-Hop: secret", "X-Seen-Keep-Alive: timeout", "X-Seen-Connection: X-Hop"} {
		if strings.Contains(resp, hdr) {
			t.Errorf("hop-by-hop header forwarded: %s", hdr)
		}
	}
}

func TestPlainHTTPKeepAliveDecidesEachRequest(t *testing.T) {
	up := echoUpstream(t)
	port := portOf(t, up.URL)
	d := allowHosts("allowed.test")
	h := startProxy(t, testConfig(), d)
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", h.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}
	c, br := dial()
	get := func(host string) *http.Response {
		t.Helper()
		_, err := io.WriteString(c, "GET http://"+host+":"+port+"/ HTTP/1.1\r\nHost: "+host+":"+port+"\r\n\r\n")
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	if r := get("allowed.test"); r.StatusCode != 200 {
		t.Fatalf("first request: %d", r.StatusCode)
	}
	r := get("denied.test")
	if r.StatusCode != 403 || !strings.Contains(r.Status, "not on the test list") || !r.Close {
		t.Fatalf("second request on the same connection: %q close=%v, want 403 with the reason, closing", r.Status, r.Close)
	}
	c, br = dial() // a deny closes the connection: its status line carries the reason
	if r := get("allowed.test"); r.StatusCode != 200 {
		t.Fatalf("third request: %d", r.StatusCode)
	}
	if got := d.hosts(); strings.Join(got, ",") != "allowed.test,denied.test,allowed.test" {
		t.Fatalf("decided %v", got)
	}
}

func TestPlainHTTPMalformed(t *testing.T) {
	up := echoUpstream(t)
	port := portOf(t, up.URL)
	d := allowHosts("allowed.test")
	h := startProxy(t, testConfig(), d)
	abs := "http://allowed.test:" + port + "/"
	hostHdr := "Host: allowed.test:" + port + "\r\n"
	tests := []struct {
		name, req, want string
	}{
		{"origin-form", "GET / HTTP/1.1\r\n" + hostHdr + "\r\n", "400"},
		{"host header names another host", "GET " + abs + " HTTP/1.1\r\nHost: evil.test\r\n\r\n", "400"},
		{"host header names another port", "GET " + abs + " HTTP/1.1\r\nHost: allowed.test:1\r\n\r\n", "400"},
		{"userinfo in URL", "GET http://allowed.test:" + port + "@denied.test:" + port + "/ HTTP/1.1\r\nHost: denied.test:" + port + "\r\n\r\n", "400"},
		{"https absolute-form", "GET https://allowed.test:" + port + "/ HTTP/1.1\r\n" + hostHdr + "\r\n", "400"},
		{"CL and TE", "POST " + abs + " HTTP/1.1\r\n" + hostHdr + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400"},
		{"TE and CL", "POST " + abs + " HTTP/1.1\r\n" + hostHdr + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", "400"},
		{"differing CL", "POST " + abs + " HTTP/1.1\r\n" + hostHdr + "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", "400"},
		{"TE not chunked", "POST " + abs + " HTTP/1.1\r\n" + hostHdr + "Transfer-Encoding: gzip\r\n\r\n", "501"},
		{"folded header", "GET " + abs + " HTTP/1.1\r\n" + hostHdr + "X-A: b\r\n c\r\n\r\n", "400"},
		{"bad host", "GET http://exa%00mple.test/ HTTP/1.1\r\nHost: x\r\n\r\n", "400"},
		{"numeric host out of range", "GET http://256.1.1.1:" + port + "/ HTTP/1.1\r\nHost: 256.1.1.1:" + port + "\r\n\r\n", "400"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawRequest(t, h.httpAddr, tc.req)
			if got := statusLine(resp); !strings.Contains(got, " "+tc.want+" ") {
				t.Fatalf("got %q, want %s", got, tc.want)
			}
		})
	}
	if calls := d.calls(); len(calls) != 0 {
		t.Fatalf("malformed requests reached the decider: %+v", calls)
	}
}

func TestPlainHTTPSmugglingDoesNotReachUpstream(t *testing.T) {
	hits := make(chan string, 10)
	up := echoUpstream(t)
	up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- r.URL.Path
		echoHandler(w, r)
	})
	port := portOf(t, up.URL)
	h := startProxy(t, testConfig(), allowHosts("allowed.test"))
	// A pipelined CL+TE request after a good one: the first is served, the
	// smuggling attempt is refused and the connection closed.
	req := "GET http://allowed.test:" + port + "/ok HTTP/1.1\r\nHost: allowed.test:" + port + "\r\n\r\n" +
		"POST http://allowed.test:" + port + "/smuggle HTTP/1.1\r\nHost: allowed.test:" + port +
		"\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n"
	resp := rawRequest(t, h.httpAddr, req)
	if !strings.HasPrefix(resp, "HTTP/1.1 200") || !strings.Contains(resp, "HTTP/1.1 400") {
		t.Fatalf("got %q", resp)
	}
	close(hits)
	var paths []string
	for p := range hits {
		paths = append(paths, p)
	}
	if strings.Join(paths, ",") != "/ok" {
		t.Fatalf("upstream saw %v", paths)
	}
}

func TestPlainHTTPChunkedBodyKeepsFraming(t *testing.T) {
	up := echoUpstream(t)
	port := portOf(t, up.URL)
	h := startProxy(t, testConfig(), allowHosts("allowed.test"))
	abs := "http://allowed.test:" + port
	req := "POST " + abs + "/one HTTP/1.1\r\nHost: allowed.test:" + port + "\r\nTransfer-Encoding: chunked\r\n\r\n" +
		"5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n" +
		"POST " + abs + "/two HTTP/1.1\r\nHost: allowed.test:" + port + "\r\nContent-Length: 3\r\n\r\nabc" +
		"GET " + abs + "/three HTTP/1.1\r\nHost: allowed.test:" + port + "\r\nConnection: close\r\n\r\n"
	resp := rawRequest(t, h.httpAddr, req)
	for _, want := range []string{"POST /one body=hello", "POST /two body=abc", "GET /three body="} {
		if !strings.Contains(resp, want) {
			t.Fatalf("missing %q in %q", want, resp)
		}
	}
}

func TestPlainHTTPHostSpellingsAreNormalised(t *testing.T) {
	up := echoUpstream(t)
	port := portOf(t, up.URL)
	d := allowHosts() // deny all: only the decider input matters
	h := startProxy(t, testConfig(), d)
	tests := []struct {
		name, host, hostHeader, want string
		isIP                         bool
	}{
		{"upper case", "ALLOWED.Test", "", "allowed.test", false},
		{"trailing dot", "allowed.test.", "", "allowed.test", false},
		{"full-width letters", "ａｌｌｏｗｅｄ.test", "allowed.test", "allowed.test", false},
		{"unicode name", "bücher.test", "xn--bcher-kva.test", "xn--bcher-kva.test", false},
		{"decimal IPv4", "2130706433", "", "127.0.0.1", true},
		{"octal IPv4", "0177.0.0.01", "", "127.0.0.1", true},
		{"hex IPv4", "0x7f.0.0.1", "", "127.0.0.1", true},
		{"short IPv4", "127.1", "", "127.0.0.1", true},
		{"IPv4-mapped IPv6", "[::ffff:127.0.0.1]", "", "127.0.0.1", true},
		{"IPv6", "[0:0::1]", "", "::1", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(d.calls())
			hostHeader := tc.hostHeader
			if hostHeader == "" {
				hostHeader = tc.host
			}
			resp := rawRequest(t, h.httpAddr, "GET http://"+tc.host+":"+port+"/ HTTP/1.1\r\nHost: "+hostHeader+":"+port+"\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(resp, "HTTP/1.1 403") {
				t.Fatalf("got %q", statusLine(resp))
			}
			calls := d.calls()
			if len(calls) != before+1 {
				t.Fatalf("%d new Decide calls", len(calls)-before)
			}
			if in := calls[before]; in.Host != tc.want || in.HostIsIP != tc.isIP {
				t.Fatalf("decider saw host %q ip=%v, want %q ip=%v", in.Host, in.HostIsIP, tc.want, tc.isIP)
			}
		})
	}
}

func TestPlainHTTPUpstreamFailures(t *testing.T) {
	closed := listen(t)
	closedPort := portOf(t, closed.Addr().String())
	closed.Close()
	cfg := testConfig()
	cfg.Resolver = failingResolver{}
	d := allowHosts("allowed.test", "nxdomain.test")
	h := startProxy(t, cfg, d)
	c := proxyClient(t, h.httpAddr, nil)
	tests := []struct {
		name, url string
		want      int
		body      string
	}{
		{"connection refused", "http://allowed.test:" + closedPort + "/", 502, "refused"},
		{"DNS failure", "http://nxdomain.test/", 502, "resolving nxdomain.test"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := c.Get(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want || !strings.Contains(string(body), tc.body) {
				t.Fatalf("got %d %q, want %d with %q", resp.StatusCode, body, tc.want, tc.body)
			}
		})
	}
}

func TestHeaderLimits(t *testing.T) {
	cfg := testConfig()
	cfg.MaxHeaderBytes = 4 << 10
	cfg.HeaderTimeout = 300 * time.Millisecond
	h := startProxy(t, cfg, allowHosts("allowed.test"))
	t.Run("oversized head gets 431", func(t *testing.T) {
		big := "X-Big: " + strings.Repeat("a", 16<<10) + "\r\n"
		resp := rawRequest(t, h.httpAddr, "GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n"+big+"\r\n")
		if !strings.Contains(statusLine(resp), "431") {
			t.Fatalf("got %q", statusLine(resp))
		}
	})
	t.Run("slow client is closed", func(t *testing.T) {
		c, err := net.Dial("tcp", h.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, _ = io.WriteString(c, "GET http://allowed.test/ HTTP/1.1\r\nHost: allo")
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		_, err = io.ReadAll(c)
		if err != nil || time.Since(start) > 2*time.Second {
			t.Fatalf("connection not closed by the header timeout: err=%v after %v", err, time.Since(start))
		}
	})
}
