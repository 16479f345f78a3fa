package proxy

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"

	"golang.org/x/net/http2"

	"github.com/regate/regate/engine"
)

// errHTTPCheck is wrapped by every tunnel cut because the HTTP inside it
// cannot be checked.
var errHTTPCheck = errors.New("tunnel closed by the HTTP check")

// ruleHTTPCheck is the rule of the proxy's own deny of such a tunnel.
const ruleHTTPCheck = "proxy:http-check"

// serveTunnelHTTP serves a tunnel whose first client bytes are an HTTP/1.x
// request line as plain HTTP, from then on: every request on it takes the
// per-request path with the tunnel's destination, identity and listener,
// so method and path rules hold inside tunnels, and a Host (or an
// absolute-form URL) must name the tunnel's host. The smuggling checks of
// the HTTP listener apply. Upstream connections are the per-request
// path's, dialed to the addresses the guard checks for each request.
func (p *Proxy) serveTunnelHTTP(f *flow, client net.Conn, first []byte) error {
	dest := f.dest()
	who := Identity{ID: f.in.AttemptID, Attempt: f.in.Attempt}
	ic := &innerConn{Conn: rawConn(client), pre: first, frames: newFraming(p.cfg.MaxHeaderBytes), f: f, done: make(chan struct{})}
	srv := p.innerServer()
	srv.Handler = p.tunnelHandler(reqSource{dest: dest, who: who, listener: f.in.Client.Listener, scheme: engine.SchemeHTTP}, ic.frames)
	return p.serveInner(srv, ic, nil)
}

// innerServer is the HTTP server of the requests inside a tunnel (plain
// HTTP found in it, or an inspected one's), with the listener's limits.
func (p *Proxy) innerServer() *http.Server {
	return &http.Server{
		ReadHeaderTimeout: p.cfg.HeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		MaxHeaderBytes:    p.cfg.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
}

// serveInner serves the one connection ic with srv, tracked for Shutdown,
// until it closes: HTTP/1.x, or HTTP/2 through h2 when it is not nil.
func (p *Proxy) serveInner(srv *http.Server, ic *innerConn, h2 *http2.ServeConnOpts) error {
	if !p.addServer(srv) {
		return ErrClosed
	}
	defer p.removeServer(srv)
	if h2 != nil {
		h2.BaseConfig = srv
		(&http2.Server{IdleTimeout: p.cfg.IdleTimeout, MaxUploadBufferPerStream: 1 << 20}).ServeConn(ic, h2)
		return nil
	}
	err := srv.Serve(&oneConnListener{c: ic, closed: make(chan struct{})})
	<-ic.done // Serve returns when the listener closes; the request in flight ends first
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// tunnelHandler checks that a request inside a tunnel names the tunnel's
// destination, then hands it to the per-request path. frames is the
// HTTP/1.x framing check of the connection; nil for HTTP/2, whose framing
// net/http's server checks.
func (p *Proxy) tunnelHandler(src reqSource, frames *framing) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer p.recoverHTTP(w, r)
		var head headInfo
		if frames != nil {
			head = frames.next()
		} else { // HTTP/2: :authority, and a Host header that may repeat it
			head.hosts = slices.Compact(append([]string{r.Host}, r.Header.Values("Host")...))
		}
		if head.err != nil {
			writeHTTPError(w, http.StatusBadRequest, head.err.Error(), true)
			return
		}
		if err := checkTunnelRequest(r, head, src.dest, src.scheme); err != nil {
			writeHTTPError(w, http.StatusBadRequest, err.Error(), true)
			return
		}
		p.serveRequest(w, r, src)
	})
}

// checkTunnelRequest refuses a request inside a tunnel that names another
// destination than the tunnel's (the plain-text twin of SNI fronting).
func checkTunnelRequest(r *http.Request, head headInfo, dest Dest, scheme string) error {
	names := head.hosts
	switch {
	case r.Method == http.MethodConnect:
		return errors.New("CONNECT inside a tunnel")
	case len(head.hosts) > 1:
		return errors.New("more than one Host header")
	case r.URL.IsAbs():
		if r.URL.Scheme != scheme || r.URL.User != nil {
			return fmt.Errorf("request URL %q inside a tunnel must be %s:// without user information", r.URL.Redacted(), scheme)
		}
		names = append(names, r.URL.Host)
	}
	for _, h := range names {
		ht, err := parseDest(h, dest.Port)
		if err != nil || ht.Host != dest.Host || ht.Port != dest.Port {
			return fmt.Errorf("host %q does not name the tunnel's destination %s", h, dest)
		}
	}
	return nil
}

// httpCheckDeny cuts a tunnel whose HTTP cannot be checked: the proxy's
// own deny.
func (p *Proxy) httpCheckDeny(f *flow, reason string) error {
	f.ownDeny(ruleHTTPCheck, reason)
	return fmt.Errorf("%w: %s", errHTTPCheck, reason)
}

// innerConn is a tunnel's client connection served as plain HTTP: it
// replays the sniffed bytes, feeds the framing check, and counts the
// tunnel's bytes.
type innerConn struct {
	net.Conn
	pre    []byte
	frames *framing
	f      *flow
	once   sync.Once
	done   chan struct{}
}

func (c *innerConn) Read(b []byte) (int, error) {
	var n int
	var err error
	if len(c.pre) > 0 {
		n = copy(b, c.pre)
		c.pre = c.pre[n:]
	} else {
		n, err = c.Conn.Read(b)
	}
	if n > 0 {
		if c.frames != nil { // nil for HTTP/2
			c.frames.feed(b[:n])
		}
		c.f.up.Add(int64(n))
	}
	return n, err
}

func (c *innerConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	c.f.down.Add(int64(n))
	return n, err
}

func (c *innerConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return c.Conn.Close()
}

// ReadFrom hides the TCP connection's ReadFrom: net/http would splice a
// response body past Write, and its bytes would not be counted.
func (c *innerConn) ReadFrom(r io.Reader) (int64, error) {
	return io.Copy(struct{ io.Writer }{c}, r)
}

// oneConnListener hands out one connection, then blocks until it is
// closed (or the listener is), so that http.Server.Serve returns when the
// tunnel is over.
type oneConnListener struct {
	c      *innerConn
	mu     sync.Mutex
	given  bool
	closed chan struct{}
	once   sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	given := l.given
	l.given = true
	l.mu.Unlock()
	if !given {
		return l.c, nil
	}
	select {
	case <-l.c.done:
	case <-l.closed:
	}
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }
