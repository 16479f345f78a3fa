package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestConnectAuth(t *testing.T) {
	cfg := testConfig()
	cfg.AllowAnonymous = true
	expired := attemptFixture("old", "tok-old")
	expired.Expires = time.Now().Add(-time.Minute)
	cfg.Attempts = registry(t, attemptFixture("a1", "tok1"), expired)
	d := allowHosts("allowed.test")
	h := startProxy(t, cfg, d)
	basic := func(u, p string) string {
		return "Proxy-Authorization: Basic " + basicAuth(u, p) + "\r\n"
	}
	tests := []struct {
		name, extra string
		want        int
		wantAttempt string
	}{
		{"anonymous", "", 403, ""}, // decided (and denied: only the input matters)
		{"valid", basic("a1", "tok1"), 403, "a1"},
		{"wrong token is not downgraded", basic("a1", "bad"), 407, ""},
		{"unknown attempt is not downgraded", basic("ghost", "tok1"), 407, ""},
		{"another attempt's token", basic("old", "tok1"), 407, ""},
		{"expired attempt", basic("old", "tok-old"), 407, ""},
		{"empty token", basic("a1", ""), 407, ""},
		{"case of the id matters", basic("A1", "tok1"), 407, ""},
		{"token with trailing newline", basic("a1", "tok1\n"), 407, ""},
		{"bearer scheme", "Proxy-Authorization: Bearer x\r\n", 407, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(d.calls())
			_, _, resp := connect(t, h.httpAddr, "denied.test:443", tc.extra)
			if resp.StatusCode != tc.want {
				t.Fatalf("got %s, want %d", resp.Status, tc.want)
			}
			calls := d.calls()
			if tc.want == 407 {
				if len(calls) != before || resp.Header.Get("Proxy-Authenticate") == "" {
					t.Fatalf("407 without challenge or with a decision: %v", resp.Header)
				}
				return
			}
			if calls[before].AttemptID != tc.wantAttempt {
				t.Fatalf("attempt %q, want %q", calls[before].AttemptID, tc.wantAttempt)
			}
		})
	}
}

func TestBoundAttempt(t *testing.T) {
	up := echoUpstream(t)
	cfg := testConfig()
	cfg.AllowAnonymous = false
	cfg.BoundAttempt = "run1"
	cfg.Attempts = registry(t, attemptFixture("run1", "tok"), attemptFixture("other", "tok2"))
	d := allowHosts("allowed.test")
	h := startProxy(t, cfg, d)
	target := "http://allowed.test:" + portOf(t, up.URL) + "/"
	tests := []struct {
		name string
		user *url.Userinfo
		want int
	}{
		{"no credentials: attributed to the bound attempt", nil, 200},
		{"the bound attempt's credentials", url.UserPassword("run1", "tok"), 200},
		{"wrong token", url.UserPassword("run1", "x"), 407},
		{"another attempt's valid credentials", url.UserPassword("other", "tok2"), 407},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(d.calls())
			resp, err := proxyClient(t, h.httpAddr, tc.user).Get(target)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 200 {
				in := d.calls()[before]
				if in.AttemptID != "run1" || in.Attempt == nil || in.Attempt.Allow[0] != "extra.test" {
					t.Fatalf("input %+v", in)
				}
			}
		})
	}
}

func TestProxyAuthBasicInURL(t *testing.T) {
	up := echoUpstream(t)
	cfg := testConfig()
	cfg.AllowAnonymous = false
	cfg.Attempts = registry(t, attemptFixture("a1", "tok1"))
	d := allowHosts("allowed.test")
	h := startProxy(t, cfg, d)
	target := "http://allowed.test:" + portOf(t, up.URL) + "/"
	tests := []struct {
		name string
		user *url.Userinfo
		want int
	}{
		{"valid credentials", url.UserPassword("a1", "tok1"), 200},
		{"wrong token", url.UserPassword("a1", "nope"), 407},
		{"unknown attempt", url.UserPassword("ghost", "tok1"), 407},
		{"no credentials", nil, 407},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := proxyClient(t, h.httpAddr, tc.user).Get(target)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("got %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 407 && resp.Header.Get("Proxy-Authenticate") != `Basic realm="regate"` {
				t.Fatalf("Proxy-Authenticate = %q", resp.Header.Get("Proxy-Authenticate"))
			}
			if tc.want == 200 && resp.Header.Get("X-Seen-Proxy-Authorization") != "" {
				t.Fatal("Proxy-Authorization was forwarded upstream")
			}
		})
	}
	calls := d.calls()
	if len(calls) != 1 || calls[0].AttemptID != "a1" || calls[0].Attempt == nil || calls[0].Attempt.Labels["team"] != "t" {
		t.Fatalf("decider calls %+v", calls)
	}
}

// TestAuthRefusalsCountedAndLogged: every 407 and SOCKS5 authentication
// failure is counted by listener and logged, at most once a second.
func TestAuthRefusalsCountedAndLogged(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	cfg := testConfig()
	cfg.AllowAnonymous = false
	cfg.Attempts = registry(t, attemptFixture("a1", "tok1"))
	cfg.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil))
	h := startProxy(t, cfg, allowHosts("allowed.test"))
	for range 3 {
		if _, _, resp := connect(t, h.httpAddr, "allowed.test:443", "Proxy-Authorization: Basic "+basicAuth("a1", "bad")+"\r\n"); resp.StatusCode != 407 {
			t.Fatalf("CONNECT: %s", resp.Status)
		}
	}
	got := socksRaw(t, h.socksAddr, []byte{5, 1, 2}, append([]byte{1, 2, 'a', '1', 3, 'b', 'a', 'd'}, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80))
	if len(got) < 4 || got[3] != 1 {
		t.Fatalf("SOCKS5 answer % x, want an authentication failure", got)
	}
	if v := testutil.ToFloat64(h.p.m.authFailures.WithLabelValues(ListenerHTTP)); v != 3 {
		t.Fatalf("HTTP auth failures = %v", v)
	}
	if v := testutil.ToFloat64(h.p.m.authFailures.WithLabelValues(ListenerSOCKS5)); v != 1 {
		t.Fatalf("SOCKS5 auth failures = %v", v)
	}
	mu.Lock()
	n := strings.Count(logs.String(), "proxy authentication refused")
	mu.Unlock()
	if n < 1 || n > 2 { // the burst within a second: one line (two if it straddled a second)
		t.Fatalf("%d log lines for 4 refusals:\n%s", n, logs.String())
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}
