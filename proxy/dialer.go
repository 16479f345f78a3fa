package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Dial error classes, used for answers and the dial-errors metric.
const (
	dialDNS     = "dns"
	dialRefused = "refused"
	dialTimeout = "timeout"
	dialOther   = "other"
	dialParent  = "parent" // the parent proxy refused or was unreachable
)

// dialError is an upstream failure with its class.
type dialError struct {
	class string
	err   error
}

func (e *dialError) Error() string { return e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// ssrfError is a guard refusal; class names the address class.
type ssrfError struct{ class string }

func (e *ssrfError) Error() string { return ssrfReason(e.class) }

// guard resolves destinations once, refuses internal addresses and dials
// only the addresses it checked.
type guard struct {
	resolver    Resolver
	hosts       map[string][]netip.Addr
	allow       []netip.Prefix
	dialTimeout time.Duration
	dialer      DialFunc // used only with checked addresses

	lookups lookupCache // planForParent's

	mu  sync.RWMutex
	own []netip.AddrPort // the proxy's listening addresses
}

// addOwn records a listening address, so that the proxy never dials
// itself. An unspecified address stands for every local address.
func (g *guard) addOwn(addr net.Addr) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return // not TCP (a unix socket): nothing to dial into
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	g.mu.Lock()
	if !slices.Contains(g.own, ap) {
		g.own = append(g.own, ap)
	}
	g.mu.Unlock()
}

// removeOwn forgets one listening address recorded by addOwn (a bound
// listener that ended).
func (g *guard) removeOwn(addr net.Addr) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	g.mu.Lock()
	defer g.mu.Unlock()
	if i := slices.Index(g.own, ap); i >= 0 {
		g.own = slices.Delete(g.own, i, i+1)
	}
}

// Protect makes the guard refuse addr as it refuses the proxy's own
// listeners, whatever allow_cidrs says: the admin API's TCP listener must
// never be reachable through the proxy. A unix address is ignored.
func (p *Proxy) Protect(addr net.Addr) { p.guard.addOwn(addr) }

// isOwn reports whether a connection to ap could reach one of the proxy's
// listening addresses: it is on one of their ports and ap is an address
// of this host in any spelling the kernel accepts (the unspecified
// addresses 0.0.0.0 and ::, which connect to the host itself; any
// loopback address; the address of any interface). IPv4-mapped forms are
// unmapped before. The exact listening address is own in any case.
func (g *guard) isOwn(ap netip.AddrPort) bool {
	g.mu.RLock()
	exact := slices.Contains(g.own, ap)
	onPort := slices.ContainsFunc(g.own, func(o netip.AddrPort) bool { return o.Port() == ap.Port() })
	g.mu.RUnlock()
	return exact || onPort && isLocalAddr(ap.Addr())
}

// isLocalAddr reports whether a belongs to this machine.
func isLocalAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return true // fail closed
	}
	for _, ia := range addrs {
		if pfx, err := netip.ParsePrefix(ia.String()); err == nil && pfx.Addr().Unmap().WithZone("") == a.WithZone("") {
			return true
		}
	}
	return false
}

// resolve returns the addresses of the name host: the pin, or one DNS
// lookup.
func (g *guard) resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if pinned, ok := g.hosts[host]; ok {
		return slices.Clone(pinned), nil
	}
	ctx, cancel := context.WithTimeout(ctx, g.dialTimeout)
	defer cancel()
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err == nil && len(addrs) == 0 {
		err = errors.New("no addresses")
	}
	if err != nil {
		return nil, &dialError{class: dialDNS, err: fmt.Errorf("resolving %s: %w", host, err)}
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// check returns the addresses that pass the guard, or an *ssrfError naming
// the class of the first refused address when none does.
func (g *guard) check(addrs []netip.Addr, port int) ([]netip.AddrPort, error) {
	var ok []netip.AddrPort
	firstClass := ""
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a, uint16(port))
		class := g.classOf(ap)
		if class == "" {
			ok = append(ok, ap)
		} else if firstClass == "" {
			firstClass = class
		}
	}
	if len(ok) == 0 {
		if firstClass == "" {
			firstClass = classUnspecified
		}
		return nil, &ssrfError{class: firstClass}
	}
	return ok, nil
}

// classOf returns why ap is refused, or "".
func (g *guard) classOf(ap netip.AddrPort) string {
	if g.isOwn(ap) {
		return classProxyLoop
	}
	for _, p := range g.allow {
		if p.Contains(ap.Addr()) {
			return ""
		}
	}
	return classify(ap.Addr())
}

// plan returns the addresses to dial for d: an address the client named
// is checked as it is (never looked up); a name is resolved once (pin or
// DNS) and every address checked.
func (g *guard) plan(ctx context.Context, d Dest) ([]netip.AddrPort, error) {
	if d.IsIP {
		a, err := netip.ParseAddr(d.Host)
		if err != nil {
			return nil, &ssrfError{class: classUnspecified}
		}
		return g.check([]netip.Addr{a.Unmap()}, d.Port)
	}
	addrs, err := g.resolve(ctx, d.Host)
	if err != nil {
		return nil, err
	}
	return g.check(addrs, d.Port)
}

// parentLookupTimeout bounds the local lookup of a name the parent will
// resolve: where only the parent can resolve public names, local lookups
// may hang, and must not eat the dial's time.
const parentLookupTimeout = 2 * time.Second

// Local lookups of names the parent resolves are remembered, failures
// too (where only the parent resolves public names, every lookup fails,
// and would cost a DNS round trip, or the timeout, per request).
const (
	parentLookupTTL = 30 * time.Second
	parentLookupMax = 4096
)

// lookupCache remembers local lookups for planForParent.
type lookupCache struct {
	mu sync.Mutex
	m  map[string]lookupEntry
}

type lookupEntry struct {
	addrs []netip.Addr // nil: the lookup failed
	until time.Time
}

func (c *lookupCache) get(host string, now time.Time) (lookupEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[host]
	if !ok || now.After(e.until) {
		return lookupEntry{}, false
	}
	return e, true
}

func (c *lookupCache) put(host string, addrs []netip.Addr, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= parentLookupMax {
		c.m = map[string]lookupEntry{} // bounded: start over rather than grow
	}
	c.m[host] = lookupEntry{addrs: addrs, until: now.Add(parentLookupTTL)}
}

// planForParent checks what it can of a destination the parent proxy will
// resolve: an address the client named, and pinned addresses, as plan
// does; a name's local resolution, when it succeeds, must pass for every
// address (the parent may pick any of them). A name that does not resolve
// here is no error: the parent resolves it.
func (g *guard) planForParent(ctx context.Context, d Dest) error {
	if d.IsIP {
		_, err := g.plan(ctx, d)
		return err
	}
	now := time.Now()
	e, ok := g.lookups.get(d.Host, now)
	if !ok {
		ctx, cancel := context.WithTimeout(ctx, parentLookupTimeout)
		addrs, err := g.resolve(ctx, d.Host)
		cancel()
		if err != nil {
			addrs = nil
		}
		e = lookupEntry{addrs: addrs}
		g.lookups.put(d.Host, addrs, now)
	}
	addrs := e.addrs
	for _, a := range addrs {
		if _, err := g.check([]netip.Addr{a}, d.Port); err != nil {
			return err
		}
	}
	return nil
}

// dial connects to the first of addrs that answers; each was checked. It
// is the one place the proxy connects upstream.
func (g *guard) dial(ctx context.Context, addrs []netip.AddrPort) (net.Conn, error) {
	var last error
	for _, ap := range addrs {
		c, err := g.dialer(ctx, "tcp", ap.String())
		if err == nil {
			return c, nil
		}
		last = err
		if ctx.Err() != nil {
			break
		}
	}
	if last == nil {
		last = errors.New("no addresses to dial")
	}
	return nil, &dialError{class: classifyDialErr(last), err: fmt.Errorf("dialing upstream: %w", last)}
}

func classifyDialErr(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return dialRefused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return dialTimeout
	}
	return dialOther
}
