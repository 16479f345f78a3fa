package proxy

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestShutdown(t *testing.T) {
	port := tcpUpstream(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
	t.Run("drains a tunnel that ends in time", func(t *testing.T) {
		h := startProxy(t, testConfig(), allowHosts("allowed.test"))
		c, _, resp := connect(t, h.httpAddr, "allowed.test:"+port, "")
		if resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
		go func() { time.Sleep(100 * time.Millisecond); c.Close() }()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := h.p.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		if _, err := net.Dial("tcp", h.httpAddr); err == nil {
			t.Fatal("HTTP listener still accepts")
		}
		if _, err := net.Dial("tcp", h.socksAddr); err == nil {
			t.Fatal("SOCKS listener still accepts")
		}
	})
	t.Run("closes what remains at the deadline", func(t *testing.T) {
		h := startProxy(t, testConfig(), allowHosts("allowed.test"))
		_, br, resp := connect(t, h.httpAddr, "allowed.test:"+port, "")
		if resp.StatusCode != 200 {
			t.Fatal(resp.Status)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := h.p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: %v, want deadline exceeded", err)
		}
		if _, err := br.ReadByte(); err == nil {
			t.Fatal("tunnel still open")
		}
		if n := h.p.ActiveTunnels(); n != 0 {
			t.Fatalf("ActiveTunnels = %d", n)
		}
	})
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met in time")
}

func TestSOCKS5HandshakeTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.HeaderTimeout = 200 * time.Millisecond
	h := startProxy(t, cfg, allowHosts("allowed.test"))
	c, err := net.Dial("tcp", h.socksAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _ = c.Write([]byte{5, 1}) // greeting cut short
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadAll(c); err != nil || time.Since(start) > 2*time.Second {
		t.Fatalf("slow SOCKS5 client not closed: %v after %v", err, time.Since(start))
	}
}

// TestTunnelSharePerClient: an anonymous client holding idle tunnels takes
// only its share; a registered attempt still gets tunnels, and the 503
// names the limit that was hit.
func TestTunnelSharePerClient(t *testing.T) {
	port := tcpUpstream(t, func(c net.Conn) { _, _ = io.Copy(c, c) })
	cfg := testConfig()
	cfg.MaxTunnels = 8 // a share of 2 per client by default
	cfg.Attempts = registry(t, attemptFixture("a1", "tok1"))
	h := startProxy(t, cfg, allowHosts("allowed.test"))
	target := "allowed.test:" + port
	for i := range 2 {
		if _, _, resp := connect(t, h.httpAddr, target, ""); resp.StatusCode != 200 {
			t.Fatalf("anonymous tunnel %d: %s", i, resp.Status)
		}
	}
	_, _, resp := connect(t, h.httpAddr, target, "")
	if resp.StatusCode != 503 || !strings.Contains(resp.Status, "for client 127.0.0.1 (proxy.max_tunnels_per_client 2)") {
		t.Fatalf("third anonymous tunnel: %s", resp.Status)
	}
	auth := "Proxy-Authorization: Basic " + basicAuth("a1", "tok1") + "\r\n"
	for i := range 2 {
		if _, _, resp := connect(t, h.httpAddr, target, auth); resp.StatusCode != 200 {
			t.Fatalf("attempt tunnel %d: %s", i, resp.Status)
		}
	}
	if _, _, resp := connect(t, h.httpAddr, target, auth); resp.StatusCode != 503 || !strings.Contains(resp.Status, "for attempt a1") {
		t.Fatalf("third attempt tunnel: %s", resp.Status)
	}
	if n := h.p.ActiveTunnels(); n != 4 {
		t.Fatalf("ActiveTunnels = %d", n)
	}
}

func TestTunnelShareDefaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   Config
		share int
	}{
		{"a quarter by default", Config{MaxTunnels: 100}, 25},
		{"at least one", Config{MaxTunnels: 2}, 1},
		{"all of them for a bound attempt", Config{MaxTunnels: 100, BoundAttempt: "run"}, 100},
		{"as configured", Config{MaxTunnels: 100, MaxTunnelsPerClient: 7}, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.cfg, allowHosts())
			if err != nil {
				t.Fatal(err)
			}
			if p.slots.perClient != tc.share {
				t.Fatalf("share %d, want %d", p.slots.perClient, tc.share)
			}
		})
	}
}

// TestShutdownRightAfterStartIsClean: the proxy closes its listeners before
// http.Server.Shutdown closes them again; that second close is no failure.
func TestShutdownRightAfterStartIsClean(t *testing.T) {
	for i := range 20 {
		p, err := New(testConfig(), allowHosts())
		if err != nil {
			t.Fatal(err)
		}
		ln := listen(t)
		served := make(chan error, 1)
		go func() { served <- p.ServeHTTPProxy(ln) }()
		waitFor(t, func() bool {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err == nil {
				c.Close()
			}
			return err == nil
		})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		err = p.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("round %d: Shutdown: %v", i, err)
		}
		// ErrClosed: Shutdown ran before Serve registered the listener
		// (the kernel accepts connections from Listen on).
		if err := <-served; err != nil && !errors.Is(err, ErrClosed) {
			t.Fatalf("round %d: Serve: %v", i, err)
		}
	}
}
