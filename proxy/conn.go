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
}

func (c *clientConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if c.frames != nil && n > 0 {
		c.frames.feed(b[:n])
	}
	return n, err
}

func (c *clientConn) Close() error {
	c.once.Do(c.gauge.Dec)
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
	retry    acceptRetry // net/http retries fewer accept errors
}

func (l *clientListener) Accept() (net.Conn, error) {
	c, err := l.retry.accept(l.Listener, l.p.log, l.listener)
	if err != nil {
		return nil, err
	}
	return l.p.newClientConn(c, l.listener, l.framing), nil
}

func (p *Proxy) newClientConn(c net.Conn, listener string, withFraming bool) *clientConn {
	g := p.m.active.WithLabelValues(listener)
	g.Inc()
	cc := &clientConn{Conn: c, gauge: g}
	if withFraming {
		cc.frames = newFraming(p.cfg.MaxHeaderBytes)
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
