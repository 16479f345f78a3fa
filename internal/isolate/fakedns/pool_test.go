package fakedns

import (
	"fmt"
	"net/netip"
	"testing"
)

func newPool(t *testing.T, v4, v6 string, max int) *Pool {
	t.Helper()
	p, err := NewPool(netip.MustParsePrefix(v4), netip.MustParsePrefix(v6), max)
	if err != nil {
		t.Fatalf("NewPool: %v", err)
	}
	return p
}

func TestNewPoolRejects(t *testing.T) {
	v4, v6 := DefaultPrefixes()
	tests := []struct {
		name   string
		v4, v6 netip.Prefix
		max    int
	}{
		{"zero max", v4, v6, 0},
		{"v6 as v4", v6, v6, 10},
		{"v4 as v6", v4, v4, 10},
		{"v4 /31 has no usable address", netip.MustParsePrefix("10.0.0.0/31"), v6, 10},
		{"v6 /128 has no usable address", v4, netip.MustParsePrefix("fd00::/128"), 10},
		{"zero prefixes", netip.Prefix{}, netip.Prefix{}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewPool(tt.v4, tt.v6, tt.max); err == nil {
				t.Fatal("NewPool succeeded, want an error")
			}
		})
	}
}

func TestPoolMapping(t *testing.T) {
	v4, v6 := DefaultPrefixes()
	p := newPool(t, v4.String(), v6.String(), DefaultMax)
	tests := []struct {
		name   string
		lookup func(string) netip.Addr
		prefix netip.Prefix
	}{
		{"v4", p.Lookup4, v4},
		{"v6", p.Lookup6, v6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[netip.Addr]string{}
			for i := range 100 {
				name := fmt.Sprintf("host%d.example.com", i)
				a := tt.lookup(name)
				if !tt.prefix.Contains(a) || a == tt.prefix.Addr() {
					t.Fatalf("%s: %v outside %v or the network address", name, a, tt.prefix)
				}
				if other, dup := seen[a]; dup {
					t.Fatalf("%s and %s share %v", name, other, a)
				}
				seen[a] = name
				for _, again := range []string{name, name + ".", "HOST" + name[4:], "Host" + name[4:] + "."} {
					if b := tt.lookup(again); b != a {
						t.Fatalf("%q: %v, want %v as for %q", again, b, a, name)
					}
				}
				if got, ok := p.Name(a); !ok || got != name {
					t.Fatalf("Name(%v) = %q, %v; want %q", a, got, ok, name)
				}
			}
		})
	}
	if a := p.Lookup4(""); a.IsValid() {
		t.Errorf("Lookup4(\"\") = %v, want the zero Addr", a)
	}
	if _, ok := p.Name(netip.MustParseAddr("192.0.2.1")); ok {
		t.Error("Name of an address never handed out succeeded")
	}
}

func TestPoolNeverNetworkNorBroadcast(t *testing.T) {
	// A /29 has 6 usable IPv4 addresses, a /125 has 7 usable IPv6 ones.
	p := newPool(t, "10.1.2.0/29", "fd00::/125", 100)
	got4 := map[netip.Addr]bool{}
	got6 := map[netip.Addr]bool{}
	for i := range 20 {
		name := fmt.Sprintf("n%d", i)
		if a := p.Lookup4(name); a.IsValid() {
			got4[a] = true
		}
		if a := p.Lookup6(name); a.IsValid() {
			got6[a] = true
		}
	}
	if len(got4) != 6 || got4[netip.MustParseAddr("10.1.2.0")] || got4[netip.MustParseAddr("10.1.2.7")] {
		t.Errorf("v4 addresses %v: want the 6 of 10.1.2.1-6", got4)
	}
	if len(got6) != 7 || got6[netip.MustParseAddr("fd00::")] {
		t.Errorf("v6 addresses %v: want the 7 of fd00::1-7", got6)
	}
}

func TestPoolLRU(t *testing.T) {
	const n = 4
	tests := []struct {
		name    string
		touch   []string // looked up again, in order, after a..d
		hold    []string // held before the extra name
		evicted string   // whose address the extra name gets; "" for none
	}{
		{"oldest goes", nil, nil, "a"},
		{"a touched, b goes", []string{"a"}, nil, "b"},
		{"held LRU is skipped", nil, []string{"a"}, "b"},
		{"held and touched", []string{"b"}, []string{"a"}, "c"},
		{"everything held", nil, []string{"a", "b", "c", "d"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPool(t, "198.18.0.0/15", "fd00:7267::/64", n)
			addr := map[string]netip.Addr{}
			for _, name := range []string{"a", "b", "c", "d"} {
				addr[name] = p.Lookup4(name)
			}
			for _, name := range tt.touch {
				p.Lookup4(name)
			}
			for _, name := range tt.hold {
				defer p.Hold(addr[name])()
			}
			got := p.Lookup4("e")
			if tt.evicted == "" {
				if got.IsValid() {
					t.Fatalf("Lookup4(e) = %v, want the zero Addr", got)
				}
				return
			}
			if got != addr[tt.evicted] {
				t.Fatalf("Lookup4(e) = %v, want %s's %v", got, tt.evicted, addr[tt.evicted])
			}
			if name, _ := p.Name(got); name != "e" {
				t.Errorf("Name(%v) = %q, want e", got, name)
			}
			for name, a := range addr {
				if name == tt.evicted {
					continue
				}
				if again := p.Lookup4(name); again != a {
					t.Errorf("%s moved from %v to %v", name, a, again)
				}
			}
		})
	}
}

func TestPoolHoldRelease(t *testing.T) {
	p := newPool(t, "198.18.0.0/15", "fd00:7267::/64", 1)
	a := p.Lookup6("a")
	release := p.Hold(a)
	again := p.Hold(a)
	if b := p.Lookup6("b"); b.IsValid() {
		t.Fatalf("Lookup6(b) with a held = %v, want the zero Addr", b)
	}
	release()
	release() // idempotent: must not drop the second hold
	if b := p.Lookup6("b"); b.IsValid() {
		t.Fatalf("Lookup6(b) with a still held once = %v, want the zero Addr", b)
	}
	again()
	if b := p.Lookup6("b"); b != a {
		t.Fatalf("Lookup6(b) after release = %v, want a's %v", b, a)
	}
	if _, ok := p.Name(a); !ok {
		t.Fatal("Name of b's address failed")
	}
	p.Hold(netip.MustParseAddr("192.0.2.1"))() // never handed out: a no-op
}

func TestPoolMemoryBound(t *testing.T) {
	const max = 1000
	p := newPool(t, "198.18.0.0/15", "fd00:7267::/64", max)
	held := map[string]netip.Addr{"keep1.example": {}, "keep2.example": {}}
	for name := range held {
		a := p.Lookup4(name)
		held[name] = a
		defer p.Hold(a)()
	}
	for i := range 10000 {
		if a := p.Lookup4(fmt.Sprintf("n%d.example", i)); !a.IsValid() {
			t.Fatalf("name %d: zero Addr with idle entries left", i)
		}
		if n, _ := p.Len(); n > max {
			t.Fatalf("after %d names: %d entries, want at most %d", i, n, max)
		}
		if i%500 == 0 {
			for name, a := range held {
				if got, ok := p.Name(a); !ok || got != name {
					t.Fatalf("after %d names: Name(%v) = %q, want %s", i, a, got, name)
				}
			}
		}
	}
	for name, a := range held {
		if got := p.Lookup4(name); got != a {
			t.Errorf("%s moved from %v to %v", name, a, got)
		}
	}
}

func TestPoolConcurrent(t *testing.T) {
	p := newPool(t, "198.18.0.0/15", "fd00:7267::/64", 64)
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				name := fmt.Sprintf("g%d-%d", g, i%100)
				a := p.Lookup4(name)
				if a.IsValid() {
					release := p.Hold(a)
					p.Name(a)
					release()
				}
				p.Lookup6(name)
			}
		}()
	}
	for range 4 {
		<-done
	}
}
