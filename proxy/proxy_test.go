package proxy

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/regate/regate/engine"
)

func TestNewValidates(t *testing.T) {
	d := allowHosts()
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"negative values, all reported", Config{DialTimeout: -1, MaxTunnels: -1, MaxHeaderBytes: -1},
			[]string{"dial timeout", "max tunnels", "max header bytes"}},
		{"bad pin", Config{Hosts: map[string][]netip.Addr{"a..b": {netip.MustParseAddr("1.2.3.4")}}}, []string{"pinning host"}},
		{"empty pin", Config{Hosts: map[string][]netip.Addr{"a.test": nil}}, []string{"no addresses"}},
		{"invalid CIDR", Config{AllowCIDRs: []netip.Prefix{{}}}, []string{"allow CIDR #1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, d)
			if err == nil {
				t.Fatal("New accepted the config")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("New accepted a nil decider")
	}
	p, err := New(Config{Hosts: map[string][]netip.Addr{"Pinned.TEST.": {netip.MustParseAddr("1.2.3.4")}}}, d)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.cfg.Hosts["pinned.test"]; !ok || p.cfg.DialTimeout != DefaultDialTimeout {
		t.Fatalf("pins not normalised or defaults missing: %+v", p.cfg)
	}
}

func TestDeciderFailuresDeny(t *testing.T) {
	up := echoUpstream(t)
	target := "http://allowed.test:" + portOf(t, up.URL) + "/"
	tests := []struct {
		name   string
		decide func(engine.Input) (engine.Decision, error)
		reason string
	}{
		{"error", func(engine.Input) (engine.Decision, error) {
			return engine.Decision{Allow: true}, errors.New("boom")
		}, "policy evaluation failed: boom"},
		{"zero decision", func(engine.Input) (engine.Decision, error) { return engine.Decision{}, nil }, "denied by policy"},
		{"panic", func(engine.Input) (engine.Decision, error) { panic("bad policy") }, "policy evaluation failed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := startProxy(t, testConfig(), &fakeDecider{fn: tc.decide})
			resp, err := proxyClient(t, h.httpAddr, nil).Get(target)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got %d, want 403", resp.StatusCode)
			}
			if o := h.out.wait(t, 1)[0]; o.Allowed || !strings.Contains(o.Reason, tc.reason) {
				t.Fatalf("outcome %+v", o)
			}
		})
	}
}

func TestHandlerPanicIsDenied(t *testing.T) {
	cfg := testConfig()
	cfg.Resolver = panicResolver{}
	h := startProxy(t, cfg, allowHosts("panic.test"))
	t.Run("http", func(t *testing.T) {
		resp := rawRequest(t, h.httpAddr, "GET http://panic.test/ HTTP/1.1\r\nHost: panic.test\r\n\r\n")
		if !strings.HasPrefix(resp, "HTTP/1.1 500") {
			t.Fatalf("got %q", statusLine(resp))
		}
	})
	t.Run("connect", func(t *testing.T) {
		resp := rawRequest(t, h.httpAddr, "CONNECT panic.test:443 HTTP/1.1\r\nHost: panic.test:443\r\n\r\n")
		if !strings.HasPrefix(resp, "HTTP/1.1 500") {
			t.Fatalf("got %q", statusLine(resp))
		}
	})
	t.Run("socks5", func(t *testing.T) {
		got := socksRaw(t, h.socksAddr, []byte{5, 1, 0}, append([]byte{5, 1, 0, 3, 10}, "panic.test\x01\xbb"...))
		if len(got) >= 4 && got[3] == replySucceeded {
			t.Fatalf("got % x", got)
		}
		waitFor(t, func() bool { return h.p.ActiveTunnels() == 0 })
	})
}

func TestAnswerMapping(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		code  int
		reply byte
	}{
		{"ssrf", &ssrfError{class: classPrivate}, 403, replyNotAllowed},
		{"timeout", &dialError{class: dialTimeout, err: context.DeadlineExceeded}, 504, replyTTLExpired},
		{"refused", &dialError{class: dialRefused, err: errors.New("refused")}, 502, replyConnectionRefused},
		{"dns", &dialError{class: dialDNS, err: errors.New("nxdomain")}, 502, replyHostUnreachable},
		{"other", errors.New("x"), 502, replyGeneralFailure},
		{"other dial failure", &dialError{class: dialOther, err: errors.New("unreachable")}, 502, replyHostUnreachable},
		{"policy deny", nil, 403, replyNotAllowed},
		{"tunnel limit", errTooManyTunnels, 503, replyGeneralFailure},
		{"shutting down", ErrClosed, 503, replyGeneralFailure},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			class := refusalClass(tc.err)
			if code := httpStatus[class]; code != tc.code {
				t.Fatalf("HTTP %d, want %d", code, tc.code)
			}
			if r := socksReply[class]; r != tc.reply {
				t.Fatalf("SOCKS5 %#x, want %#x", r, tc.reply)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	up := echoUpstream(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig()
	cfg.Registerer = reg
	cfg.AllowCIDRs = nil
	cfg.Hosts["public.test"] = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	h := startProxy(t, cfg, allowHosts("allowed.test"))
	resp := rawRequest(t, h.httpAddr, "GET http://allowed.test:"+portOf(t, up.URL)+"/ HTTP/1.1\r\nHost: allowed.test:"+portOf(t, up.URL)+"\r\nConnection: close\r\n\r\n")
	if !strings.HasPrefix(resp, "HTTP/1.1 403") {
		t.Fatalf("got %q", statusLine(resp))
	}
	if v := testutil.ToFloat64(h.p.m.ssrf.WithLabelValues(classLoopback)); v != 1 {
		t.Fatalf("ssrf blocks = %v", v)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, want := range []string{"regate_ssrf_blocks_total", "regate_connections_active"} {
		if !strings.Contains(strings.Join(names, ","), want) {
			t.Fatalf("gathered %v, missing %s", names, want)
		}
	}
	if _, err := New(cfg, allowHosts()); err == nil {
		t.Fatal("registering twice succeeded")
	}
	waitFor(t, func() bool { return testutil.ToFloat64(h.p.m.active.WithLabelValues(ListenerHTTP)) == 0 })
}

type panicResolver struct{}

func (panicResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	panic("resolver bug")
}
