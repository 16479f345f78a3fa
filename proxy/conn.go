package proxy

import (
	"context"
	"net"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// clientConn is an accepted client connection: it keeps the active gauge
// right, and on the HTTP listener feeds the raw bytes to the framing check
// before net/http parses them.
type clientConn struct {
	net.Conn
	frames *framing // nil on the SOCKS5 listener
	gauge  prometheus.Gauge
	once   sync.Once
	// bound is the attempt of a listener bound to one (ServeHTTPProxyFor,
	// ServeSOCKSFor); "" on the shared listeners.
	bound string
	set   *connSet // the bound listener's connections; nil on the shared ones
}

func (c *clientConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.frames != nil && n > 0 {
		c.frames.feed(b[:n])
	}
	return n, err
}

func (c *clientConn) Close() error {
	c.once.Do(func() {
		c.gauge.Dec()
		if c.set != nil {
			c.set.remove(c)
		}
	})
	return c.Conn.Close()
}

// tcp returns the underlying TCP connection (for splice), or nil.
func (c *clientConn) tcp() *net.TCPConn {
	tc, _ := c.Conn.(*net.TCPConn)
	return tc
}

// clientListener wraps accepted connections in clientConn.
type clientListener struct {
	net.Listener
	p        *Proxy
	listener string
	framing  bool
	bind     *binding    // nil on the shared listener
	retry    acceptRetry // net/http retries fewer accept errors
}

func (l *clientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.retry.accept(l.Listener, l.p.log, l.listener)
		if err != nil {
			return nil, err
		}
		if cc := l.p.newClientConn(c, l.listener, l.framing, l.bind); cc != nil {
			return cc, nil
		}
	}
}

// newClientConn wraps an accepted connection; nil (the connection
// closed) when its bound listener has ended.
func (p *Proxy) newClientConn(c net.Conn, listener string, withFraming bool, b *binding) *clientConn {
	g := p.m.active.WithLabelValues(listener)
	g.Inc()
	cc := &clientConn{Conn: c, gauge: g}
	if withFraming {
		cc.frames = newFraming(p.cfg.MaxHeaderBytes)
	}
	if b != nil {
		cc.bound, cc.set = b.attempt, b.conns
		if !b.conns.add(cc) {
			_ = cc.Close()
			return nil
		}
	}
	return cc
}

type connKey struct{}

// withClientConn stores the accepted connection in a request's context.
func withClientConn(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// clientConnOf returns the connection a request arrived on.
func clientConnOf(ctx context.Context) *clientConn {
	c, _ := ctx.Value(connKey{}).(*clientConn)
	return c
}
