package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/regate/regate/engine"
)

// ServeSOCKS serves SOCKS5 (CONNECT only) on ln until Shutdown; it returns
// nil after a graceful shutdown.
func (p *Proxy) ServeSOCKS(ln net.Listener) error {
	return p.serveSOCKS(ln, nil)
}

func (p *Proxy) serveSOCKS(ln net.Listener, b *binding) error {
	if !p.addListener(ln, nil) {
		_ = ln.Close()
		return ErrClosed
	}
	var retry acceptRetry
	for {
		c, err := retry.accept(ln, p.log, ListenerSOCKS5)
		if err != nil {
			if p.isClosing() {
				return nil
			}
			if b != nil {
				p.endBound(ln, nil, b)
				if errors.Is(err, net.ErrClosed) {
					return nil
				}
			}
			return fmt.Errorf("serving SOCKS5: %w", err)
		}
		cc := p.newClientConn(c, ListenerSOCKS5, false, b)
		if cc == nil {
			continue
		}
		release, ok := p.track(cc)
		if !ok {
			_ = cc.Close()
			continue
		}
		go func() {
			defer release()
			p.serveSOCKSConn(cc)
		}()
	}
}

// serveSOCKSConn runs one SOCKS5 session: handshake, decision, tunnel.
func (p *Proxy) serveSOCKSConn(c *clientConn) {
	defer func() {
		if rec := recover(); rec != nil {
			p.log.Error("SOCKS5 handler panicked; connection denied", "panic", rec)
			_ = c.Close()
		}
	}()
	br := bufio.NewReaderSize(c, 1024)
	_ = c.SetDeadline(time.Now().Add(p.cfg.HeaderTimeout))
	who, req, err := p.socksHandshake(c, br, c.bound)
	if err != nil {
		var se *socksError
		if errors.As(err, &se) {
			_ = writeReply(c, se.reply, nil)
		}
		p.log.Debug("SOCKS5 handshake failed", "client", c.RemoteAddr(), "err", err)
		_ = c.Close()
		return
	}
	_ = c.SetDeadline(time.Time{})
	p.socksConnect(c, drainBuffered(br), who, req)
}

// socksHandshake negotiates the method, authenticates and reads the
// request.
func (p *Proxy) socksHandshake(c net.Conn, br *bufio.Reader, bound string) (Identity, socksRequest, error) {
	methods, err := readGreeting(br)
	if errors.Is(err, errSOCKS4) {
		_, _ = c.Write([]byte{0x00, 0x5b, 0, 0, 0, 0, 0, 0}) // SOCKS4 "request rejected"
	}
	if err != nil {
		return Identity{}, socksRequest{}, err
	}
	who, err := p.socksAuth(c, br, methods, bound)
	if err != nil {
		if errors.Is(err, errAuth) {
			p.authRefused(ListenerSOCKS5, c.RemoteAddr().String(), err)
		}
		return Identity{}, socksRequest{}, err
	}
	req, err := readRequest(br)
	return who, req, err
}

// socksAuth selects user/password whenever offered (so that credentials
// are checked, never skipped), else no-auth when the proxy accepts clients
// without credentials.
func (p *Proxy) socksAuth(c net.Conn, br *bufio.Reader, methods []byte, bound string) (Identity, error) {
	if bytes.IndexByte(methods, methodUserPass) >= 0 {
		if _, err := c.Write([]byte{socksVersion, methodUserPass}); err != nil {
			return Identity{}, fmt.Errorf("answering greeting: %w", err)
		}
		user, pass, err := readUserPass(br)
		if err != nil {
			return Identity{}, err
		}
		who, err := p.identify(Credentials{User: user, Pass: pass, Sent: true}, bound)
		status := byte(0)
		if err != nil {
			status = 1
		}
		if _, werr := c.Write([]byte{socksAuthVersion, status}); werr != nil && err == nil {
			err = fmt.Errorf("answering authentication: %w", werr)
		}
		return who, err
	}
	who, err := p.identify(Credentials{}, bound)
	if err != nil || bytes.IndexByte(methods, methodNoAuth) < 0 {
		_, _ = c.Write([]byte{socksVersion, methodNoAcceptable})
		return Identity{}, fmt.Errorf("%w: no acceptable SOCKS5 method", errAuth)
	}
	if _, err := c.Write([]byte{socksVersion, methodNoAuth}); err != nil {
		return Identity{}, fmt.Errorf("answering greeting: %w", err)
	}
	return who, nil
}

// socksConnect hands one SOCKS5 CONNECT to the pipeline.
func (p *Proxy) socksConnect(c *clientConn, pre []byte, who Identity, req socksRequest) {
	dest, err := NewDest(req.host, req.port)
	if err != nil {
		_ = writeReply(c, replyGeneralFailure, nil)
		_ = c.Close()
		return
	}
	p.Handle(p.baseCtx, Conn{
		Client: c, Dest: dest, Who: who, Listener: ListenerSOCKS5, Scheme: engine.SchemeSOCKS5,
		Answer: &socksAnswer{c: c, pre: pre},
	})
}

// socksReply answers each refusal class on the SOCKS5 listener (RFC 1928
// §6).
var socksReply = map[Class]byte{
	ClassDenied:      replyNotAllowed,
	ClassLimit:       replyGeneralFailure,
	ClassClosing:     replyGeneralFailure,
	ClassTimeout:     replyTTLExpired,
	ClassRefused:     replyConnectionRefused,
	ClassDNS:         replyHostUnreachable,
	ClassUnreachable: replyHostUnreachable,
	ClassInternal:    replyGeneralFailure,
	ClassParent:      replyGeneralFailure,
}

// socksAnswer answers with reply codes.
type socksAnswer struct {
	c   *clientConn
	pre []byte // client bytes read past the request
}

func (a *socksAnswer) Refuse(r Refusal) error {
	defer a.c.Close()
	return writeReply(a.c, socksReply[r.Class], nil)
}

func (a *socksAnswer) Established(up net.Conn) (net.Conn, []byte, error) {
	var bound net.Addr
	if up != nil { // nil for an inspected tunnel: no upstream of its own
		bound = up.LocalAddr()
	}
	if err := writeReply(a.c, replySucceeded, bound); err != nil {
		return a.c, nil, fmt.Errorf("answering SOCKS5 request: %w", err)
	}
	return a.c, a.pre, nil
}
