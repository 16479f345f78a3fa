package proxy

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"

	"github.com/regate/regate/engine"
)

// serveConnect decides a CONNECT tunnel before anything is dialed. Every
// answer but 200 closes the connection: the framing check cannot follow a
// connection past a CONNECT head.
func (p *Proxy) serveConnect(w http.ResponseWriter, r *http.Request, head headInfo) {
	t, err := connectTarget(r, head)
	if err != nil {
		writeHTTPError(w, http.StatusBadRequest, err.Error(), true)
		return
	}
	who, err := p.identifyHTTP(r)
	if err != nil {
		w.Header().Set("Connection", "close")
		writeAuthRequired(w, err)
		return
	}
	f := p.newFlow(t, engine.SchemeHTTPS, engine.MethodConnect, who, r.RemoteAddr, ListenerHTTP)
	if !f.decide(r.Context()) {
		p.rejectConnect(w, f, http.StatusForbidden, f.dec.Reason, denyHeader(f), denyBody(f))
		f.finish(nil)
		return
	}
	cc := clientConnOf(r.Context())
	if cc == nil {
		panic("CONNECT on a connection the proxy did not accept")
	}
	release, ok := p.track(cc)
	if !ok {
		p.rejectConnect(w, f, http.StatusServiceUnavailable, "shutting down", nil, "regate: proxy is shutting down\n")
		f.finish(ErrClosed)
		return
	}
	defer release() // after releaseTunnel: Shutdown returns with no tunnel counted
	if !p.acquireTunnel() {
		p.rejectConnect(w, f, http.StatusServiceUnavailable, "too many tunnels", nil, "regate: too many open tunnels\n")
		f.finish(errTooManyTunnels)
		return
	}
	defer p.releaseTunnel()
	p.openTunnel(w, r, f)
}

// openTunnel dials an allowed CONNECT, answers 200 and relays.
func (p *Proxy) openTunnel(w http.ResponseWriter, r *http.Request, f *flow) {
	up, err := p.dialFlow(r.Context(), f)
	if err != nil {
		code, msg := upstreamStatus(f, err)
		if code == http.StatusForbidden {
			p.rejectConnect(w, f, code, f.dec.Reason, denyHeader(f), msg)
		} else {
			p.rejectConnect(w, f, code, http.StatusText(code), nil, "regate: "+msg+"\n")
		}
		f.finish(err)
		return
	}
	client, buffered, err := hijack(w)
	if err != nil {
		_ = up.Close()
		f.finish(fmt.Errorf("hijacking client connection: %w", err))
		return
	}
	if _, err := client.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n")); err != nil {
		_ = up.Close()
		_ = client.Close()
		f.finish(fmt.Errorf("answering CONNECT: %w", err))
		return
	}
	p.tunnel(f, client, buffered, up)
}

// connectTarget is the authority-form target of a CONNECT (port required);
// a Host header, when sent, must name the same destination.
func connectTarget(r *http.Request, head headInfo) (target, error) {
	t, err := parseTarget(r.RequestURI, 0)
	if err != nil {
		return target{}, err
	}
	for _, h := range head.hosts {
		ht, err := parseTarget(h, t.port)
		if err != nil || ht.host != t.host || ht.port != t.port {
			return target{}, fmt.Errorf("host header %q does not match the CONNECT target", h)
		}
	}
	return t, nil
}

// dialFlow plans and dials an allowed flow's destination.
func (p *Proxy) dialFlow(ctx context.Context, f *flow) (net.Conn, error) {
	addrs, err := f.plan(ctx)
	if err != nil {
		return nil, err
	}
	return f.dial(ctx, addrs)
}

// rejectConnect answers a CONNECT on the raw connection, so that the
// status text can carry the reason, and closes it.
func (p *Proxy) rejectConnect(w http.ResponseWriter, f *flow, code int, text string, h http.Header, body string) {
	c, _, err := hijack(w)
	if err != nil {
		w.Header().Set("Connection", "close")
		http.Error(w, body, code)
		return
	}
	defer c.Close()
	if err := writeRawResponse(c, code, text, h, body); err != nil {
		p.log.Debug("answering CONNECT", "host", f.in.Host, "err", err)
	}
}

// hijack takes the client connection over, with the bytes net/http had
// already buffered after the request head.
func hijack(w http.ResponseWriter) (net.Conn, []byte, error) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil, nil, fmt.Errorf("hijacking: %T is no Hijacker", w)
	}
	c, rw, err := hj.Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("hijacking: %w", err)
	}
	return c, drainBuffered(rw.Reader), nil
}

func drainBuffered(br *bufio.Reader) []byte {
	n := br.Buffered()
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	_, _ = br.Read(b)
	return b
}
