package proxy

import (
	"context"
	"errors"
	"io"
	"net"
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
