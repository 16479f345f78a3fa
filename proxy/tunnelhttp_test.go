package proxy

import (
	"bufio"
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

// seenRequests is an upstream recording what reaches it.
type seenRequests struct {
	mu  sync.Mutex
	got []string // "METHOD HOST PATH"
}

func (s *seenRequests) handler(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.got = append(s.got, r.Method+" "+r.Host+" "+r.URL.Path)
	s.mu.Unlock()
	fmt.Fprintf(w, "%s %s", r.Method, r.URL.Path)
}

func (s *seenRequests) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// methodsDecider allows allowed.test for GET and HEAD only (a read-only
// mode), and tunnels to it.
func methodsDecider() *fakeDecider {
	return &fakeDecider{fn: func(in engine.Input) (engine.Decision, error) {
		switch {
		case in.Host != "allowed.test":
			return engine.Decision{Reason: "host " + in.Host + " is not on the test list", ID: "host"}, nil
		case in.Method == "CONNECT", in.Method == "GET", in.Method == "HEAD":
			return engine.Decision{Allow: true, ID: "ok"}, nil
		}
		return engine.Decision{Reason: "method " + in.Method + " is read-only", Rule: "methods", ID: "methods"}, nil
	}}
}

// TestPlainHTTPInsideTunnels: a tunnel whose first bytes are an HTTP/1.x
// request is plain HTTP from then on, on every source: each request is
// decided (method, path), must name the tunnel's host, gets the proxy's
// answers, and passes the smuggling checks.
func TestPlainHTTPInsideTunnels(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			seen := &seenRequests{}
			up := httptest.NewServer(http.HandlerFunc(seen.handler))
			t.Cleanup(up.Close)
			port := portOf(t, up.URL)
			host := "allowed.test:" + port
			d := methodsDecider()
			h := startProxy(t, testConfig(), d)
			tests := []struct {
				name     string
				send     string
				status   []int    // the answers, in order
				upstream []string // what reached upstream
			}{
				{"allowed GET", "GET /a HTTP/1.1\r\nHost: " + host + "\r\n\r\n", []int{200}, []string{"GET " + host + " /a"}},
				{"Host of another virtual host", "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n", []int{400}, nil},
				{"Host of another port", "GET / HTTP/1.1\r\nHost: allowed.test:1\r\n\r\n", []int{400}, nil},
				{"absolute URL of another host", "GET http://evil.test:" + port + "/ HTTP/1.1\r\nHost: " + host + "\r\n\r\n", []int{400}, nil},
				{"two Host headers", "GET / HTTP/1.1\r\nHost: " + host + "\r\nHost: evil.test\r\n\r\n", []int{400}, nil},
				{"method denied", "POST /x HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 0\r\n\r\n", []int{403}, nil},
				{"keep-alive: each request decided", "GET /1 HTTP/1.1\r\nHost: " + host + "\r\n\r\nDELETE /2 HTTP/1.1\r\nHost: " + host + "\r\n\r\n", []int{200, 403}, []string{"GET " + host + " /1"}},
				// Sniffed as HTTP (servers may skip it); Go's server refuses it.
				{"leading empty line", "\r\nGET /e HTTP/1.1\r\nHost: " + host + "\r\n\r\n", []int{400}, nil},
				{"smuggling CL+TE", "POST /s HTTP/1.1\r\nHost: " + host + "\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", []int{400}, nil},
				{"dot segments", "GET /a/../../b HTTP/1.1\r\nHost: " + host + "\r\n\r\n", []int{200}, []string{"GET " + host + " /b"}},
				{"nested CONNECT", "CONNECT evil.test:443 HTTP/1.1\r\nHost: evil.test:443\r\n\r\n", []int{400}, nil},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					before := len(seen.list())
					c, ans := src.open(t, h, host)
					if !ans.ok {
						t.Fatalf("tunnel: %+v", ans)
					}
					if _, err := io.WriteString(c, tc.send); err != nil {
						t.Fatal(err)
					}
					br := bufio.NewReader(c)
					for i, want := range tc.status {
						resp, err := http.ReadResponse(br, nil)
						if err != nil {
							t.Fatalf("answer %d: %v", i, err)
						}
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode != want {
							t.Fatalf("answer %d: %s %q, want %d", i, resp.Status, body, want)
						}
						if want == 403 && (resp.Header.Get(HeaderProxyError) != blockedByPolicy || resp.Header.Get(HeaderDecisionID) != "methods") {
							t.Fatalf("deny headers %v", resp.Header)
						}
					}
					if got := seen.list()[before:]; strings.Join(got, ",") != strings.Join(tc.upstream, ",") {
						t.Fatalf("upstream got %q, want %q", got, tc.upstream)
					}
				})
			}
			var inner []engine.Input
			for _, in := range d.calls() {
				if in.Method != "CONNECT" {
					inner = append(inner, in)
				}
			}
			for _, in := range inner {
				if in.Scheme != "http" || in.Host != "allowed.test" || in.Client.Listener != src.listener || in.Path == "" {
					t.Fatalf("inner request input %+v", in)
				}
			}
			// Decided: GET /a, POST /x, GET /1, DELETE /2, GET /b; the refused
			// requests never reached the policy.
			if len(inner) != 5 {
				t.Fatalf("inner decisions: %+v", inner)
			}
		})
	}
}

// TestRawTunnelsStayRaw: what is not HTTP is relayed untouched, including
// line protocols whose first line is not a request line.
func TestRawTunnelsStayRaw(t *testing.T) {
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			port := tcpUpstream(t, func(c net.Conn) {
				line, _ := bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, "got "+line)
			})
			h := startProxy(t, testConfig(), allowHosts("allowed.test"))
			for _, first := range []string{"EHLO example.org\r\n", "PING\r\n", "*1\r\n", "GET /\r\n", "\x00\x01binary\n", "GET \x00 HTTP/1.1\n"} {
				c, ans := src.open(t, h, "allowed.test:"+port)
				if !ans.ok {
					t.Fatalf("tunnel: %+v", ans)
				}
				_, _ = io.WriteString(c, first)
				got, _ := bufio.NewReader(c).ReadString('\n')
				if got != "got "+first[:strings.IndexByte(first, '\n')+1] {
					t.Fatalf("sent %q, got %q", first, got)
				}
			}
			// A one-byte first message that could begin a request is relayed
			// at once: an echo answers without waiting for any timeout.
			echo := tcpUpstream(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
			c, ans := src.open(t, h, "allowed.test:"+echo)
			if !ans.ok {
				t.Fatalf("tunnel: %+v", ans)
			}
			_, _ = io.WriteString(c, "x")
			_ = c.SetReadDeadline(time.Now().Add(time.Second)) // well under the 5 s peek timeout
			b := make([]byte, 1)
			if _, err := io.ReadFull(c, b); err != nil || b[0] != 'x' {
				t.Fatalf("echo of one byte: %q %v", b, err)
			}
			_, _ = io.WriteString(c, "yz\n")
			if _, err := io.ReadFull(c, make([]byte, 3)); err != nil {
				t.Fatalf("echo after the first line: %v", err)
			}
		})
	}
}

// FuzzClassifyFirst: what arrives in pieces is classified as it would be
// whole (a decision, once taken, never changes with more bytes), and
// whatever Go's HTTP server would read as an HTTP/1 request is sniffed as
// HTTP, however the client splits its writes.
func FuzzClassifyFirst(f *testing.F) {
	for _, s := range []string{"GET / HTTP/1.1\r\nHost: a\r\n\r\n", "G", "\r\nPOST /x HTTP/1.0\n\n", "EHLO x\r\n", "\x16\x03\x01", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "get /a HTTP/1.1\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		decided, at := sniffKind(-1), 0
		for i := 1; i <= len(b); i++ {
			k, more := classifyFirst(b[:i])
			if decided >= 0 && k != decided {
				t.Fatalf("%q: %v after %d bytes, %v after %d", b, decided, at, k, i)
			}
			if !more && decided < 0 {
				decided, at = k, i
			}
		}
		if decided < 0 {
			decided, _ = classifyFirst(b)
		}
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(string(b))))
		if err == nil && req.ProtoMajor == 1 && decided != sniffHTTP {
			t.Fatalf("%q: Go reads %s %s %s, sniffed as %v", b, req.Method, req.RequestURI, req.Proto, decided)
		}
	})
}

// TestSplitRequestLineIsCut: bytes that could begin a request line are
// relayed at once (no waiting), but a request line completed by a later
// write is not relayed: the tunnel is cut, and upstream never receives a
// whole request that was not decided, however long the pauses.
func TestSplitRequestLineIsCut(t *testing.T) {
	seen := &seenRequests{}
	up := httptest.NewServer(http.HandlerFunc(seen.handler))
	t.Cleanup(up.Close)
	port := portOf(t, up.URL)
	for _, src := range sources {
		t.Run(src.name, func(t *testing.T) {
			logged := &recordingLogger{}
			cfg := testConfig()
			cfg.DecisionLogger = logged
			h := startProxy(t, cfg, methodsDecider())
			cases := 0
			for _, pause := range []time.Duration{5 * time.Millisecond, 150 * time.Millisecond} {
				for _, pieces := range [][]string{
					{"G", "ET / HTTP/1.1\r\nHost: evil.test\r\n\r\n"},
					{"GET / HT", "TP/1.1\r\nHost: evil.test\r\n\r\n"},
					{"\r\n", "GET / HTTP/1.1\r\nHost: evil.test\r\n\r\n"},
					{"PRI * HTTP", "/2.0\r\n\r\nSM\r\n\r\n"},
				} {
					cases++
					c, ans := src.open(t, h, "allowed.test:"+port)
					if !ans.ok {
						t.Fatalf("tunnel: %+v", ans)
					}
					for _, p := range pieces {
						_, _ = io.WriteString(c, p)
						time.Sleep(pause)
					}
					// Upstream may answer the fragment it got (Go's server
					// answers a lone empty line with 400); then the cut.
					_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
					if _, err := io.ReadAll(c); err != nil {
						t.Fatalf("%q: tunnel not cut: %v", pieces, err)
					}
				}
			}
			if got := seen.list(); len(got) != 0 {
				t.Fatalf("upstream got %q", got)
			}
			if got := logged.rules(); len(got) != cases || got[0] != ruleHTTPCheck {
				t.Fatalf("logged %v, want %d %s", got, cases, ruleHTTPCheck)
			}
		})
	}
}
