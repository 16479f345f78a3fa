package proxy

import (
	"bufio"
	"context"
	"github.com/regate/regate/internal/testenv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	xproxy "golang.org/x/net/proxy"
)

func socksDialer(t *testing.T, addr string, auth *xproxy.Auth) xproxy.ContextDialer {
	t.Helper()
	d, err := xproxy.SOCKS5("tcp", addr, auth, &net.Dialer{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return d.(xproxy.ContextDialer)
}

func TestSOCKS5Connect(t *testing.T) {
	up := echoUpstream(t)
	port := portOf(t, up.URL)
	d := allowHosts("allowed.test", "127.0.0.1", "::1")
	cfg := testConfig()
	cfg.AllowCIDRs = append(cfg.AllowCIDRs, netip.MustParsePrefix("::1/128"))
	h := startProxy(t, cfg, d)
	v6 := listenV6(t)
	tests := []struct {
		name, addr string
		wantHost   string
		wantIP     bool
		wantErr    string
	}{
		{"domain", "allowed.test:" + port, "allowed.test", false, ""},
		{"domain, decimal IPv4 spelling", "2130706433:" + port, "127.0.0.1", true, ""},
		{"IPv4", "127.0.0.1:" + port, "127.0.0.1", true, ""},
		{"IPv6", v6, "::1", true, ""},
		{"denied", "denied.test:" + port, "denied.test", false, "not allowed by ruleset"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(d.calls())
			c, err := socksDialer(t, h.socksAddr, nil).DialContext(context.Background(), "tcp", tc.addr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want %q", err, tc.wantErr)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				if _, err := io.WriteString(c, "GET /s HTTP/1.1\r\nHost: "+tc.addr+"\r\nConnection: close\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				if string(body) != "GET /s body=" {
					t.Fatalf("body %q", body)
				}
			}
			in := d.calls()[before]
			if in.Host != tc.wantHost || in.HostIsIP != tc.wantIP || in.Scheme != "socks5" || in.Method != "CONNECT" ||
				in.Client.Listener != "socks5" {
				t.Fatalf("input %+v client %+v", in, in.Client)
			}
		})
	}
}

// listenV6 starts an HTTP upstream on [::1] and returns its address, or
// skips when the machine has no IPv6 loopback.
func listenV6(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		testenv.Skip(t, "no IPv6 loopback: %v", err)
	}
	s := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(echoHandler)}}
	s.Start()
	t.Cleanup(s.Close)
	return ln.Addr().String()
}

func TestSOCKS5Auth(t *testing.T) {
	up := echoUpstream(t)
	target := "allowed.test:" + portOf(t, up.URL)
	cfg := testConfig()
	cfg.AllowAnonymous = false
	expired := attemptFixture("old", "tok-old")
	expired.Expires = time.Now().Add(-time.Minute)
	cfg.Attempts = registry(t, attemptFixture("a1", "tok1"), expired)
	d := allowHosts("allowed.test")
	h := startProxy(t, cfg, d)
	tests := []struct {
		name    string
		auth    *xproxy.Auth
		wantErr bool
	}{
		{"expired attempt", &xproxy.Auth{User: "old", Password: "tok-old"}, true},
		{"another attempt's token", &xproxy.Auth{User: "old", Password: "tok1"}, true},
		{"valid", &xproxy.Auth{User: "a1", Password: "tok1"}, false},
		{"wrong token", &xproxy.Auth{User: "a1", Password: "x"}, true},
		{"unknown attempt", &xproxy.Auth{User: "zz", Password: "tok1"}, true},
		{"no credentials, anonymous refused", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := socksDialer(t, h.socksAddr, tc.auth).DialContext(context.Background(), "tcp", target)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error=%v", err, tc.wantErr)
			}
			if c != nil {
				c.Close()
			}
		})
	}
	calls := d.calls()
	if len(calls) != 1 || calls[0].AttemptID != "a1" || calls[0].Attempt.Labels["team"] != "t" {
		t.Fatalf("calls %+v", calls)
	}
}

// socksRaw sends greeting bytes, then req, and returns all the proxy
// answered until it closed.
func socksRaw(t *testing.T, addr string, msgs ...[]byte) []byte {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, m := range msgs {
		if _, err := c.Write(m); err != nil {
			break
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	b, _ := io.ReadAll(c)
	return b
}

func TestSOCKS5Refusals(t *testing.T) {
	d := allowHosts("allowed.test")
	cfg := testConfig()
	cfg.Attempts = registry(t, attemptFixture("a1", "tok1"))
	h := startProxy(t, cfg, d)
	noAuth := []byte{5, 1, 0}
	port := []byte{0x01, 0xbb}
	domain := func(cmd byte, name string) []byte {
		return append(append([]byte{5, cmd, 0, 3, byte(len(name))}, name...), port...)
	}
	tests := []struct {
		name string
		msgs [][]byte
		want []byte
	}{
		{"BIND", [][]byte{noAuth, domain(2, "allowed.test")}, []byte{5, 0, 5, replyCommandUnsupported}},
		{"UDP ASSOCIATE", [][]byte{noAuth, domain(3, "allowed.test")}, []byte{5, 0, 5, replyCommandUnsupported}},
		{"unknown address type", [][]byte{noAuth, {5, 1, 0, 9, 1, 2, 3, 4}}, []byte{5, 0, 5, replyAddressUnsupported}},
		{"SOCKS4", [][]byte{{4, 1, 0, 80, 127, 0, 0, 1, 0}}, []byte{0, 0x5b}},
		{"unparseable domain", [][]byte{noAuth, domain(1, "a..b")}, []byte{5, 0, 5, replyGeneralFailure}},
		{"denied", [][]byte{noAuth, domain(1, "denied.test")}, []byte{5, 0, 5, replyNotAllowed}},
		{"no acceptable method", [][]byte{{5, 1, 0x80}}, []byte{5, 0xff}},
		{"bad password", [][]byte{{5, 1, 2}, append([]byte{1, 2, 'a', '1', 1, 'x'}, domain(1, "allowed.test")...)}, []byte{5, 2, 1, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := socksRaw(t, h.socksAddr, tc.msgs...)
			if len(got) < len(tc.want) || string(got[:len(tc.want)]) != string(tc.want) {
				t.Fatalf("got % x, want prefix % x", got, tc.want)
			}
		})
	}
	if hosts := d.hosts(); len(hosts) != 1 || hosts[0] != "denied.test" {
		t.Fatalf("decided %v, want only denied.test", hosts)
	}
}
