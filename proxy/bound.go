package proxy

import (
	"errors"
	"net"
	"net/http"
	"sync"
)

// binding is what a listener bound to one attempt carries: the attempt,
// and the connections it accepted, which end with it.
type binding struct {
	attempt string
	conns   *connSet
}

func newBinding(attemptID string) (*binding, error) {
	if attemptID == "" {
		return nil, errors.New("binding a listener: empty attempt id")
	}
	return &binding{attempt: attemptID, conns: &connSet{m: map[*clientConn]struct{}{}}}, nil
}

// ServeHTTPProxyFor serves the HTTP proxy on ln for one attempt, as the
// listeners of `regate run` serve theirs: a client without credentials is
// that attempt (the JVM sends none), credentials that are sent must be
// its own, and once it is removed or expired every request is refused
// (407). It returns nil when ln is closed; every connection ln accepted is
// then closed too, so nothing accepted through it outlives it. Shutdown
// ends it like the shared listeners.
func (p *Proxy) ServeHTTPProxyFor(ln net.Listener, attemptID string) error {
	b, err := newBinding(attemptID)
	if err != nil {
		_ = ln.Close()
		return err
	}
	return p.serveHTTPProxy(ln, b)
}

// ServeSOCKSFor serves SOCKS5 on ln for one attempt, as ServeHTTPProxyFor
// serves HTTP.
func (p *Proxy) ServeSOCKSFor(ln net.Listener, attemptID string) error {
	b, err := newBinding(attemptID)
	if err != nil {
		_ = ln.Close()
		return err
	}
	return p.serveSOCKS(ln, b)
}

// endBound closes what a bound listener accepted and forgets the listener
// (its server, srv, when not nil), its address included: a long-running
// serve opens and closes many.
func (p *Proxy) endBound(ln net.Listener, srv *http.Server, b *binding) {
	_ = ln.Close()
	b.conns.closeAll()
	p.mu.Lock()
	delete(p.sources, ln)
	if srv != nil {
		delete(p.servers, srv)
	}
	p.mu.Unlock()
	p.guard.removeOwn(ln.Addr())
}

// connSet is the open connections of a bound listener.
type connSet struct {
	mu     sync.Mutex
	m      map[*clientConn]struct{}
	closed bool
}

// add records c; false once the set is closed.
func (s *connSet) add(c *clientConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.m[c] = struct{}{}
	return true
}

func (s *connSet) remove(c *clientConn) {
	s.mu.Lock()
	delete(s.m, c)
	s.mu.Unlock()
}

// closeAll closes every connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*clientConn, 0, len(s.m))
	for c := range s.m {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}
