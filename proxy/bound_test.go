package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"net/url"
	"testing"
	"time"

	xproxy "golang.org/x/net/proxy"
)

// serveBound serves a listener bound to attemptID (HTTP, or SOCKS5 when
// socks) and returns its address and its Serve's result.
func serveBound(t *testing.T, p *Proxy, attemptID string, socks bool) (net.Listener, <-chan error) {
	t.Helper()
	ln := listen(t)
	errc := make(chan error, 1)
	go func() {
		if socks {
			errc <- p.ServeSOCKSFor(ln, attemptID)
		} else {
			errc <- p.ServeHTTPProxyFor(ln, attemptID)
		}
	}()
	return ln, errc
}

// A listener bound to an attempt on a shared proxy (serve) attributes
// clients without credentials to its attempt, refuses another attempt's
// credentials, refuses everything once the attempt is gone, and when
// closed cuts what it accepted and is forgotten by the loop guard.
func TestBoundListener(t *testing.T) {
	up := echoUpstream(t)
	cfg := testConfig()
	cfg.AllowAnonymous = false
	reg := registry(t, attemptFixture("jvm", "tok"), attemptFixture("other", "tok2"))
	cfg.Attempts = reg
	d := allowHosts("allowed.test", "127.0.0.1")
	h := startProxy(t, cfg, d)
	ln, errc := serveBound(t, h.p, "jvm", false)
	sln, serrc := serveBound(t, h.p, "jvm", true)
	addr := ln.Addr().String()
	target := "http://allowed.test:" + portOf(t, up.URL) + "/"
	get := func(proxyAddr string, user *url.Userinfo) int {
		t.Helper()
		resp, err := proxyClient(t, proxyAddr, user).Get(target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name  string
		proxy string
		user  *url.Userinfo
		want  int
	}{
		{"shared listener, no credentials", h.httpAddr, nil, 407},
		{"bound listener, no credentials", addr, nil, 200},
		{"bound listener, its credentials", addr, url.UserPassword("jvm", "tok"), 200},
		{"bound listener, another attempt", addr, url.UserPassword("other", "tok2"), 407},
		{"bound listener, wrong token", addr, url.UserPassword("jvm", "x"), 407},
	} {
		before := len(d.calls())
		if got := get(tc.proxy, tc.user); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		} else if got == 200 && d.calls()[before].AttemptID != "jvm" {
			t.Errorf("%s: decided as %q", tc.name, d.calls()[before].AttemptID)
		}
	}
	c, err := socksDialer(t, sln.Addr().String(), nil).DialContext(t.Context(), "tcp", "allowed.test:"+portOf(t, up.URL))
	if err != nil {
		t.Fatalf("SOCKS5 without credentials on the bound listener: %v", err)
	}
	c.Close()
	if _, err := socksDialer(t, sln.Addr().String(), &xproxy.Auth{User: "other", Password: "tok2"}).DialContext(t.Context(), "tcp", "allowed.test:80"); err == nil {
		t.Error("SOCKS5 with another attempt's credentials was accepted")
	}

	// Through the shared listener, the bound one is the proxy itself:
	// nobody reaches the attempt's identity by tunnelling into it.
	_, _, resp := connect(t, h.httpAddr, addr, "Proxy-Authorization: Basic "+basicAuth("other", "tok2")+"\r\n")
	if resp.StatusCode != 403 {
		t.Errorf("CONNECT to the bound listener: %s, want 403 (proxy loop)", resp.Status)
	}

	// An open tunnel and a keep-alive connection end with the listener.
	tunnel, _, resp := connect(t, addr, "allowed.test:"+portOf(t, up.URL), "")
	if resp.StatusCode != 200 {
		t.Fatalf("CONNECT on the bound listener: %s", resp.Status)
	}
	reg.Remove("jvm")
	if got := get(addr, nil); got != 407 {
		t.Errorf("after the attempt is removed: %d, want 407", got)
	}
	ln.Close()
	sln.Close()
	for _, errc := range []<-chan error{errc, serrc} {
		if err := <-errc; err != nil {
			t.Errorf("Serve after close: %v", err)
		}
	}
	// A hang here is the tunnel outliving its listener.
	_ = tunnel.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(tunnel); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Error("the tunnel outlived its listener")
		}
	}
	h.p.mu.Lock()
	_, kept := h.p.sources[ln]
	h.p.mu.Unlock()
	if kept {
		t.Error("the proxy still holds the closed listener")
	}
	if h.p.guard.isOwn(netip.MustParseAddrPort(addr)) {
		t.Error("the guard still refuses the closed listener's address")
	}
	if err := h.p.ServeHTTPProxyFor(listen(t), ""); err == nil {
		t.Error("a listener bound to no attempt was served")
	}
}
