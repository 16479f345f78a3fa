package fakedns

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
)

// DefaultMax is the number of live entries per address family that callers
// use unless told otherwise: enough for any build or test run, small enough
// (a few MiB) to keep in memory.
const DefaultMax = 65536

// DefaultPrefixes returns the pools callers use unless told otherwise.
//
// 198.18.0.0/15 is the IPv4 block reserved for benchmarking (RFC 2544): it is
// never routed on the internet, and sing-box and Clash use it for the same
// purpose. fd00:7267::/64 is a unique local address block (RFC 4193, fd00::/8;
// 0x7267 is "rg"); the sandbox's network namespace has no other link, so the
// non-random global id cannot collide with a real network there.
func DefaultPrefixes() (v4, v6 netip.Prefix) {
	return netip.MustParsePrefix("198.18.0.0/15"), netip.MustParsePrefix("fd00:7267::/64")
}

// Pool maps names to fake addresses and back, for one run. It is safe for
// concurrent use; every operation is O(1).
//
// Names are taken as given after [strings.ToLower] and trimming one trailing
// dot: callers normalise internationalised names (IDNA) before. Each family
// holds at most max entries; when a family is full, the least recently used
// entry without a live flow ([Pool.Hold]) gives its address to the new name.
type Pool struct {
	mu sync.Mutex
	v4 family
	v6 family
}

// family is the table of one address family.
type family struct {
	base  netip.Addr // the network address of the prefix
	size  uint64     // how many entries the family may hold
	next  uint64     // offset from base of the next never-used address
	names map[string]*entry
	addrs map[netip.Addr]*entry
	idle  list.List // entries without live flows, most recently used first
}

// entry is one name ↔ address mapping.
type entry struct {
	name  string
	addr  netip.Addr
	holds int
	elem  *list.Element // in idle while holds == 0, else nil
}

// NewPool returns an empty pool drawing IPv4 addresses from v4 and IPv6
// addresses from v6, with at most max live entries in each family. The
// network address of each prefix, and the broadcast address of v4, are never
// handed out.
func NewPool(v4, v6 netip.Prefix, max int) (*Pool, error) {
	var errs []error
	if max < 1 {
		errs = append(errs, fmt.Errorf("max %d: must be at least 1", max))
	}
	if !v4.IsValid() || !v4.Addr().Is4() {
		errs = append(errs, fmt.Errorf("v4 prefix %v: not an IPv4 prefix", v4))
	} else if usable4(v4) == 0 {
		errs = append(errs, fmt.Errorf("v4 prefix %v: no usable address", v4))
	}
	if !v6.IsValid() || !v6.Addr().Is6() || v6.Addr().Is4In6() {
		errs = append(errs, fmt.Errorf("v6 prefix %v: not an IPv6 prefix", v6))
	} else if usable6(v6) == 0 {
		errs = append(errs, fmt.Errorf("v6 prefix %v: no usable address", v6))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("creating fake DNS pool: %w", err)
	}
	p := &Pool{}
	p.v4.init(v4.Masked().Addr(), min(usable4(v4), uint64(max)))
	p.v6.init(v6.Masked().Addr(), min(usable6(v6), uint64(max)))
	return p, nil
}

// usable4 is the number of addresses of p other than network and broadcast.
func usable4(p netip.Prefix) uint64 {
	n := uint64(1) << (32 - p.Bits())
	if n <= 2 {
		return 0
	}
	return n - 2
}

// usable6 is the number of addresses of p other than the network address.
func usable6(p netip.Prefix) uint64 {
	host := 128 - p.Bits()
	if host >= 64 {
		return math.MaxUint64
	}
	return (uint64(1) << host) - 1
}

func (f *family) init(base netip.Addr, size uint64) {
	f.base, f.size, f.next = base, size, 1
	f.names = make(map[string]*entry)
	f.addrs = make(map[netip.Addr]*entry)
}

// normalize is the key of a name: lower case, without one trailing dot.
func normalize(name string) string {
	return strings.TrimSuffix(strings.ToLower(name), ".")
}

// Lookup4 returns the IPv4 address of name, allocating one if needed. It
// returns the zero Addr for the empty name and when every entry of the
// family has a live flow.
func (p *Pool) Lookup4(name string) netip.Addr { return p.lookup(&p.v4, name) }

// Lookup6 is [Pool.Lookup4] for IPv6.
func (p *Pool) Lookup6(name string) netip.Addr { return p.lookup(&p.v6, name) }

func (p *Pool) lookup(f *family, name string) netip.Addr {
	name = normalize(name)
	if name == "" {
		return netip.Addr{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if e, ok := f.names[name]; ok {
		if e.elem != nil {
			f.idle.MoveToFront(e.elem)
		}
		return e.addr
	}
	e := f.allocate()
	if e == nil {
		return netip.Addr{}
	}
	e.name = name
	f.names[name] = e
	return e.addr
}

// allocate returns an idle entry at the front of the idle list, with a fresh
// address while the family has room, else the least recently used idle
// entry, unmapped from its old name; nil when every entry is held.
func (f *family) allocate() *entry {
	if f.next <= f.size {
		e := &entry{addr: offset(f.base, f.next)}
		f.next++
		f.addrs[e.addr] = e
		e.elem = f.idle.PushFront(e)
		return e
	}
	back := f.idle.Back()
	if back == nil {
		return nil
	}
	e := back.Value.(*entry)
	delete(f.names, e.name)
	f.idle.MoveToFront(back)
	return e
}

// offset returns base + n; n stays within the prefix's host bits, so the
// addition never carries into the network part.
func offset(base netip.Addr, n uint64) netip.Addr {
	b := base.As16()
	for i := 15; i >= 0 && n > 0; i-- {
		sum := uint64(b[i]) + n&0xff
		b[i] = byte(sum)
		n = n>>8 + sum>>8
	}
	a := netip.AddrFrom16(b)
	if base.Is4() {
		return a.Unmap()
	}
	return a
}

// Name returns the name addr was handed out for, if its entry lives.
func (p *Pool) Name(addr netip.Addr) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.family(addr).addrs[addr.Unmap()]
	if !ok || e.name == "" {
		return "", false
	}
	return e.name, true
}

func (p *Pool) family(addr netip.Addr) *family {
	if addr.Unmap().Is4() {
		return &p.v4
	}
	return &p.v6
}

// Hold marks a live flow on addr: until release is called, the entry of addr
// is neither evicted nor its address reused. Holds count; release is
// idempotent. Holding an address the pool never handed out does nothing.
func (p *Pool) Hold(addr netip.Addr) (release func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.family(addr)
	e, ok := f.addrs[addr.Unmap()]
	if !ok {
		return func() {}
	}
	if e.holds == 0 {
		f.idle.Remove(e.elem)
		e.elem = nil
	}
	e.holds++
	var once sync.Once
	return func() { once.Do(func() { p.release(f, e) }) }
}

func (p *Pool) release(f *family, e *entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.holds--
	if e.holds == 0 {
		e.elem = f.idle.PushFront(e)
	}
}

// Len returns the number of live entries, IPv4 and IPv6.
func (p *Pool) Len() (v4, v6 int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.v4.names), len(p.v6.names)
}
