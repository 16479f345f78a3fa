package parent_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/parent"
	"github.com/regate/regate/proxy"
)

// socksParent serves regate's own SOCKS5 listener as a parent that allows
// only the name allowed.test (pinned to loopback).
func socksParent(t *testing.T) string {
	t.Helper()
	lo := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	decide := proxy.DeciderFunc(func(_ context.Context, in engine.Input) (engine.Decision, error) {
		if in.Host == "allowed.test" {
			return engine.Decision{Allow: true, Reason: "allowed"}, nil
		}
		return engine.Decision{Reason: "no"}, nil
	})
	p, err := proxy.New(proxy.Config{
		AllowAnonymous: true, DialTimeout: 2 * time.Second,
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Hosts:      map[string][]netip.Addr{"allowed.test": lo, "refused.test": lo},
	}, decide)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.ServeSOCKS(ln) }()
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return ln.Addr().String()
}

// TestTunnelThroughSOCKS5: a SOCKS5 parent is asked for the name (it
// resolves it); its refusal is an Error with the SOCKS5 reply, and one
// that cannot be reached says so.
func TestTunnelThroughSOCKS5(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	p, err := parent.New("socks5h://"+socksParent(t), parent.Options{DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := p.Tunnel(ctx, "allowed.test:"+port)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Errorf("echo through the SOCKS5 parent: %q, %v", got, err)
	}
	c.Close()

	_, err = p.Tunnel(ctx, "refused.test:"+port)
	var pe *parent.Error
	if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), "upstream proxy refused: SOCKS5 ") {
		t.Errorf("refused by the parent: %v", err)
	}
	if p.PlainURL() != nil {
		t.Error("a SOCKS5 parent takes plain requests in absolute form")
	}
}
