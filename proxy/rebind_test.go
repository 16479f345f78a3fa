package proxy

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
)

// rebindingResolver answers a harmless address the first time and the
// address under attack afterwards, like a DNS server with TTL 0 that
// rebinds between a check and a connect.
type rebindingResolver struct {
	first, later netip.Addr
	calls        atomic.Int32
}

func (r *rebindingResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	if r.calls.Add(1) == 1 {
		return []netip.Addr{r.first}, nil
	}
	return []netip.Addr{r.later}, nil
}

// TestDNSRebindingDialsTheCheckedAddress: the name is resolved once per
// connection and exactly the checked address is dialed, so an answer that
// changes between check and connect never reaches the second address.
func TestDNSRebindingDialsTheCheckedAddress(t *testing.T) {
	good, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listening on 127.0.0.2 (Linux routes all of 127/8 to lo): %v", err)
	}
	upstream := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "checked address")
	}))
	upstream.Listener = good
	upstream.Start()
	t.Cleanup(upstream.Close)
	port := portOf(t, upstream.URL)

	res := &rebindingResolver{first: netip.MustParseAddr("127.0.0.2"), later: netip.MustParseAddr("127.0.0.1")}
	cfg := testConfig()
	cfg.Hosts = nil
	cfg.Resolver = res
	cfg.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")} // 127.0.0.1 stays forbidden
	h := startProxy(t, cfg, allowHosts("rebind.test"))

	resp, err := proxyClient(t, h.httpAddr, nil).Get("http://rebind.test:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != "checked address" {
		t.Fatalf("status %d body %q: the checked address was not the one dialed", resp.StatusCode, body)
	}
	if n := res.calls.Load(); n != 1 {
		t.Fatalf("resolver called %d times for one connection, want 1", n)
	}

	// The next connection resolves again, gets the rebound address and is
	// refused by the guard, never dialed.
	resp, err = proxyClient(t, h.httpAddr, nil).Get("http://rebind.test:" + port + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || resp.Header.Get(HeaderProxyError) != "blocked-by-policy" {
		t.Fatalf("rebound to loopback: status %d, want 403 blocked-by-policy", resp.StatusCode)
	}
}
