package proxy

import (
	"container/list"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/tlsca"
)

// Inspection is what HTTPS inspection needs: the CA whose leaves the
// client is shown, and the roots upstream certificates are verified
// against.
type Inspection struct {
	CA *tlsca.CA
	// UpstreamRoots verify upstream certificates; nil is the system's.
	UpstreamRoots *x509.CertPool
}

// ruleInspect is the rule of the proxy's own deny of a tunnel the policy
// asks to inspect when inspection is not configured.
const ruleInspect = "proxy:inspect"

var errInspectOff = errors.New("inspection is not configured")

// ErrClientHandshake is wrapped by the outcome of an inspected tunnel
// whose client failed the TLS handshake (it does not trust the CA, or pins
// certificates).
var ErrClientHandshake = errors.New("the client's TLS handshake failed on an inspected host")

// inspectTunnel serves an allowed tunnel whose decision asks for
// inspection: the destination is checked (the SSRF guard, no dial: each
// request inside gets its own upstream), the client is told the tunnel is
// established, its TLS is terminated with a leaf of the CA, and every
// request inside takes the per-request path as https.
func (p *Proxy) inspectTunnel(ctx context.Context, f *flow, c Conn) error {
	if p.cfg.Inspect == nil {
		f.ownDeny(ruleInspect, fmt.Sprintf("the policy asks to inspect %s, but HTTPS inspection is not configured", f.in.Host))
		return p.refuse(c.Answer, f, errInspectOff)
	}
	pctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	_, err := p.route(pctx, f, false)
	cancel()
	if err != nil {
		return p.refuse(c.Answer, f, err)
	}
	client, buffered, err := c.Answer.Established(nil)
	if err != nil {
		if client != nil {
			_ = client.Close()
		}
		return fmt.Errorf("answering %s client: %w", c.Listener, err)
	}
	return p.serveInspected(f, client, buffered)
}

// serveInspected terminates the client's TLS (ALPN h2 or http/1.1) and
// serves the requests inside until the client closes.
func (p *Proxy) serveInspected(f *flow, client net.Conn, pre []byte) error {
	defer client.Close()
	dest := f.dest()
	var conn net.Conn = client
	if len(pre) > 0 {
		conn = &prefixConn{Conn: client, pre: pre}
	}
	var sni string
	tc := tls.Server(conn, &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			sni = hello.ServerName
			if h, _, err := engine.NormalizeHost(sni); sni != "" && (err != nil || h != dest.Host) {
				return nil, fmt.Errorf("the SNI %q does not name the tunnel's host %s", sni, dest.Host)
			}
			return p.cfg.Inspect.CA.Leaf(dest.Host)
		},
	})
	_ = tc.SetDeadline(time.Now().Add(p.cfg.TLSPeekTimeout))
	if err := tc.Handshake(); err != nil {
		if strings.Contains(err.Error(), "does not name the tunnel's host") {
			return p.tlsDeny(f, strings.TrimPrefix(err.Error(), "tls: "))
		}
		p.handshakes.failed(p.log, dest.Host, err)
		return fmt.Errorf("%w: %w", ErrClientHandshake, err)
	}
	_ = tc.SetDeadline(time.Time{})
	src := reqSource{
		dest: dest, who: Identity{ID: f.in.AttemptID, Attempt: f.in.Attempt}, listener: f.in.Client.Listener,
		scheme: engine.SchemeHTTPS, tls: &engine.TLS{SNI: sni, Inspected: true},
	}
	ic := &innerConn{Conn: tc, f: f, done: make(chan struct{})}
	srv := p.innerServer()
	if tc.ConnectionState().NegotiatedProtocol == http2.NextProtoTLS {
		return p.serveInner(srv, ic, &http2.ServeConnOpts{Context: p.baseCtx, Handler: p.tunnelHandler(src, nil)})
	}
	ic.frames = newFraming(p.cfg.MaxHeaderBytes)
	srv.Handler = p.tunnelHandler(src, ic.frames)
	return p.serveInner(srv, ic, nil)
}

// prefixConn replays bytes already read from the client first.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(b, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// handshakeLog logs a failed client handshake on an inspected host once
// per host: clients that pin certificates or bring their own roots fail
// there by design, and the hint says so.
type handshakeLog struct {
	mu   sync.Mutex
	seen map[string]bool
}

const handshakeLogMax = 1024

func (h *handshakeLog) failed(log *slog.Logger, host string, err error) {
	h.mu.Lock()
	first := !h.seen[host] && len(h.seen) < handshakeLogMax
	if first {
		if h.seen == nil {
			h.seen = map[string]bool{}
		}
		h.seen[host] = true
	}
	h.mu.Unlock()
	if first {
		log.Warn("a client failed the TLS handshake on an inspected host; clients that pin certificates or do not trust regate's CA fail there",
			"host", host, "err", err)
	}
}

// inspectTransports are the upstream transports of inspected requests,
// one per attempt (connections are pooled per host and attempt), the
// least recently used closed beyond inspectTransportsMax.
type inspectTransports struct {
	mu  sync.Mutex
	m   map[string]*list.Element // attempt id → element of lru (*attemptTransport)
	lru list.List
}

type attemptTransport struct {
	attempt string
	t       *http.Transport
}

const inspectTransportsMax = 64

func (p *Proxy) inspectTransport(attempt string) *http.Transport {
	ts := &p.inspectTs
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if e, ok := ts.m[attempt]; ok {
		ts.lru.MoveToFront(e)
		return e.Value.(*attemptTransport).t
	}
	if ts.m == nil {
		ts.m = map[string]*list.Element{}
	}
	t := p.newTransport()
	t.ForceAttemptHTTP2 = true
	t.TLSHandshakeTimeout = p.cfg.DialTimeout
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if p.cfg.Inspect != nil {
		t.TLSClientConfig.RootCAs = p.cfg.Inspect.UpstreamRoots
	}
	ts.m[attempt] = ts.lru.PushFront(&attemptTransport{attempt: attempt, t: t})
	for ts.lru.Len() > inspectTransportsMax {
		old := ts.lru.Back()
		ts.lru.Remove(old)
		at := old.Value.(*attemptTransport)
		delete(ts.m, at.attempt)
		at.t.CloseIdleConnections()
	}
	return t
}

// closeInspectTransports closes every idle upstream connection (Shutdown).
func (p *Proxy) closeInspectTransports() {
	ts := &p.inspectTs
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for e := ts.lru.Front(); e != nil; e = e.Next() {
		e.Value.(*attemptTransport).t.CloseIdleConnections()
	}
}
