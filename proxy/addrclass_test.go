package proxy

import (
	"context"
	"github.com/regate/regate/internal/testenv"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/regate/regate/engine"
)

func TestClassify(t *testing.T) {
	tests := []struct{ addr, want string }{
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"2606:4700:4700::1111", ""},
		{"127.0.0.1", classLoopback},
		{"127.255.0.9", classLoopback},
		{"::1", classLoopback},
		{"0.0.0.0", classUnspecified},
		{"::", classUnspecified},
		{"0.1.2.3", classThisNetwork},
		{"169.254.1.1", classLinkLocal},
		{"fe80::1", classLinkLocal},
		{"169.254.169.254", classMetadata},
		{"fd00:ec2::254", classMetadata},
		{"100.100.100.200", classMetadata},
		{"10.1.2.3", classPrivate},
		{"172.16.0.1", classPrivate},
		{"172.31.255.255", classPrivate},
		{"172.32.0.1", ""},
		{"192.168.1.1", classPrivate},
		{"fc00::1", classPrivate},
		{"fd12:3456::1", classPrivate},
		{"100.64.0.1", classCGNAT},
		{"100.127.255.254", classCGNAT},
		{"224.0.0.1", classMulticast},
		{"ff02::1", classMulticast},
		{"255.255.255.255", classBroadcast},
		{"240.0.0.1", classReserved},
		{"192.0.2.1", classReserved},
		{"2001:db8::1", classReserved},
		// IPv6 forms judged by their embedded IPv4
		{"::ffff:127.0.0.1", classLoopback},
		{"::ffff:8.8.8.8", ""},
		{"::127.0.0.1", classLoopback},
		{"::a00:1", classPrivate}, // ::10.0.0.1, compatible form
		{"64:ff9b::a9fe:a9fe", classMetadata},
		{"64:ff9b::808:808", ""},
		{"2002:7f00:1::", classLoopback},   // 6to4 of 127.0.0.1
		{"2002:c0a8:101::1", classPrivate}, // 6to4 of 192.168.1.1
		{"2002:808:808::1", ""},
		{"2001:0:4136:e378:8000:63bf:80ff:fffe", classLoopback}, // Teredo, client 127.0.0.1 xored
		{"2001:0:4136:e378:8000:63bf:f7f7:f7f7", ""},            // Teredo, client 8.8.8.8
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			if got := classify(netip.MustParseAddr(tc.addr)); got != tc.want {
				t.Fatalf("classify(%s) = %q, want %q", tc.addr, got, tc.want)
			}
		})
	}
}

func TestGuardCheck(t *testing.T) {
	g := &guard{allow: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}}
	g.addOwn(&net.TCPAddr{IP: net.IPv4(10, 9, 0, 1), Port: 3128})
	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	tests := []struct {
		name      string
		addrs     []netip.Addr
		port      int
		wantOK    []string
		wantClass string
	}{
		{"public passes", addrs("8.8.8.8"), 443, []string{"8.8.8.8:443"}, ""},
		{"internal addresses are dropped, public kept", addrs("127.0.0.1", "8.8.8.8", "10.0.0.1"), 80, []string{"8.8.8.8:80"}, ""},
		{"all internal: refused with the first class", addrs("169.254.169.254", "10.0.0.1"), 80, nil, classMetadata},
		{"allow_cidrs exempts", addrs("10.9.1.1"), 80, []string{"10.9.1.1:80"}, ""},
		{"allow_cidrs does not exempt the proxy itself", addrs("10.9.0.1"), 3128, nil, classProxyLoop},
		{"the proxy's address on another port", addrs("10.9.0.1"), 80, []string{"10.9.0.1:80"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := g.check(tc.addrs, tc.port)
			var got []string
			for _, ap := range ok {
				got = append(got, ap.String())
			}
			if strings.Join(got, ",") != strings.Join(tc.wantOK, ",") {
				t.Fatalf("passed %v, want %v", got, tc.wantOK)
			}
			se, _ := err.(*ssrfError)
			if (se == nil && tc.wantClass != "") || (se != nil && se.class != tc.wantClass) {
				t.Fatalf("err %v, want class %q", err, tc.wantClass)
			}
		})
	}
}

func TestGuardOwnUnspecifiedListener(t *testing.T) {
	g := &guard{allow: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}
	g.addOwn(&net.TCPAddr{IP: net.IPv4zero, Port: 1080})
	if _, err := g.check([]netip.Addr{netip.MustParseAddr("127.0.0.1")}, 1080); err == nil {
		t.Fatal("loopback on the port of a 0.0.0.0 listener passed")
	}
}

// TestSSRFWithoutAllowCIDRs: allowed names whose pins or DNS answers point
// inside are refused and logged, with the class and not the address.
func TestSSRFWithoutAllowCIDRs(t *testing.T) {
	up := echoUpstream(t)
	port := portOf(t, up.URL)
	cfg := testConfig()
	cfg.AllowCIDRs = nil
	cfg.Hosts["metadata.test"] = []netip.Addr{netip.MustParseAddr("169.254.169.254")}
	cfg.Resolver = mapResolver{
		"rebind.test":  {netip.MustParseAddr("10.0.0.7")},
		"mapped.test":  {netip.MustParseAddr("::ffff:127.0.0.1")},
		"sixfour.test": {netip.MustParseAddr("2002:7f00:1::")},
	}
	logged := &recordingLogger{}
	cfg.DecisionLogger = logged
	allowAll := DeciderFunc(func(_ context.Context, in engine.Input) (engine.Decision, error) {
		return engine.Decision{Allow: true, ID: "allow"}, nil
	})
	h := startProxy(t, cfg, allowAll)
	tests := []struct{ name, host, reason string }{
		{"pin to loopback", "allowed.test", "destination resolves to a loopback address"},
		{"pin to metadata", "metadata.test", "destination resolves to a cloud metadata address"},
		{"DNS to private", "rebind.test", "destination resolves to a private address"},
		{"DNS to mapped loopback", "mapped.test", "destination resolves to a loopback address"},
		{"DNS to 6to4 loopback", "sixfour.test", "destination resolves to a loopback address"},
		{"decimal loopback literal", "2130706433", "destination resolves to a loopback address"},
		{"metadata literal", "169.254.169.254", "destination resolves to a cloud metadata address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawRequest(t, h.httpAddr, "GET http://"+tc.host+":"+port+"/ HTTP/1.1\r\nHost: "+tc.host+":"+port+"\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(resp, "HTTP/1.1 403") || !strings.Contains(resp, tc.reason) || !strings.Contains(resp, "X-Proxy-Error: blocked-by-policy") {
				t.Fatalf("got %q", resp)
			}
			if _, isIP, _ := engine.NormalizeHost(tc.host); !isIP && (strings.Contains(resp, "127.0.0.1") || strings.Contains(resp, "10.0.0.7")) {
				t.Fatalf("the answer names the address: %q", resp)
			}
			_, _, cresp := connect(t, h.httpAddr, tc.host+":"+port, "")
			if cresp.StatusCode != 403 || !strings.Contains(cresp.Status, tc.reason) {
				t.Fatalf("CONNECT: %s", cresp.Status)
			}
		})
	}
	rules := logged.rules()
	if len(rules) != 2*len(tests) || !strings.HasPrefix(rules[0], "ssrf:") {
		t.Fatalf("logged %v", rules)
	}
}

// TestOwnAddressesInEverySpelling: under allow_cidrs that open everything,
// neither the proxy's own listeners nor a protected (admin) address is
// reachable through the proxy, whatever address the client names for this
// host.
func TestOwnAddressesInEverySpelling(t *testing.T) {
	cfg := testConfig()
	cfg.AllowCIDRs = []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}
	logged := &recordingLogger{}
	cfg.DecisionLogger = logged
	h := startProxy(t, cfg, DeciderFunc(func(context.Context, engine.Input) (engine.Decision, error) {
		return engine.Decision{Allow: true, ID: "allow-all"}, nil
	}))
	admin := echoUpstream(t) // stands for the admin API
	adminAddr, _ := net.ResolveTCPAddr("tcp", admin.Listener.Addr().String())
	h.p.Protect(adminAddr)
	hostAddr := ""
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if pfx, err := netip.ParsePrefix(a.String()); err == nil && pfx.Addr().Is4() && !pfx.Addr().IsLoopback() {
				hostAddr = pfx.Addr().String()
				break
			}
		}
	}
	for _, port := range []string{portOf(t, h.httpAddr), portOf(t, h.socksAddr), portOf(t, admin.URL)} {
		hosts := []string{"0.0.0.0", "[::]", "[::ffff:127.0.0.1]", "127.0.0.2", "127.1", "2130706433", "0", "[::1]", "[::ffff:0.0.0.0]"}
		if hostAddr != "" {
			hosts = append(hosts, hostAddr)
		} else if testenv.InCI() {
			t.Fatal("no non-loopback IPv4 interface address to test with")
		}
		for _, host := range hosts {
			t.Run(host+":"+port, func(t *testing.T) {
				_, _, resp := connect(t, h.httpAddr, host+":"+port, "")
				if resp.StatusCode != 403 || !strings.Contains(resp.Status, "own listening address") {
					t.Fatalf("CONNECT: %s", resp.Status)
				}
				raw := rawRequest(t, h.httpAddr, "GET http://"+host+":"+port+"/v1/status HTTP/1.1\r\nHost: "+host+":"+port+"\r\nConnection: close\r\n\r\n")
				if !strings.HasPrefix(raw, "HTTP/1.1 403") {
					t.Fatalf("GET: %q", statusLine(raw))
				}
			})
		}
	}
	for _, r := range logged.rules() {
		if r != "ssrf:proxy-loop" {
			t.Fatalf("logged %v", logged.rules())
		}
	}
}
