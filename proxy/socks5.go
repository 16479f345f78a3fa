package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/regate/regate/engine"
)

// ServeSOCKS serves SOCKS5 (CONNECT only) on ln until Shutdown; it returns
// nil after a graceful shutdown.
func (p *Proxy) ServeSOCKS(ln net.Listener) error {
	if !p.addListener(ln, nil) {
		_ = ln.Close()
		return ErrClosed
	}
	var backoff time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if p.isClosing() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("serving SOCKS5: %w", err)
		}
		backoff = 0
		cc := p.newClientConn(c, ListenerSOCKS5, false)
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
	who, req, err := p.socksHandshake(c, br)
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
func (p *Proxy) socksHandshake(c net.Conn, br *bufio.Reader) (identity, socksRequest, error) {
	methods, err := readGreeting(br)
	if errors.Is(err, errSOCKS4) {
		_, _ = c.Write([]byte{0x00, 0x5b, 0, 0, 0, 0, 0, 0}) // SOCKS4 "request rejected"
	}
	if err != nil {
		return identity{}, socksRequest{}, err
	}
	who, err := p.socksAuth(c, br, methods)
	if err != nil {
		return identity{}, socksRequest{}, err
	}
	req, err := readRequest(br)
	return who, req, err
}

// socksAuth selects user/password whenever offered (so that credentials
// are checked, never skipped), else no-auth when the proxy accepts clients
// without credentials.
func (p *Proxy) socksAuth(c net.Conn, br *bufio.Reader, methods []byte) (identity, error) {
	if bytes.IndexByte(methods, methodUserPass) >= 0 {
		if _, err := c.Write([]byte{socksVersion, methodUserPass}); err != nil {
			return identity{}, fmt.Errorf("answering greeting: %w", err)
		}
		user, pass, err := readUserPass(br)
		if err != nil {
			return identity{}, err
		}
		who, err := p.identify(credentials{user: user, pass: pass, ok: true})
		status := byte(0)
		if err != nil {
			status = 1
		}
		if _, werr := c.Write([]byte{socksAuthVersion, status}); werr != nil && err == nil {
			err = fmt.Errorf("answering authentication: %w", werr)
		}
		return who, err
	}
	who, err := p.identify(credentials{})
	if err != nil || bytes.IndexByte(methods, methodNoAuth) < 0 {
		_, _ = c.Write([]byte{socksVersion, methodNoAcceptable})
		return identity{}, fmt.Errorf("%w: no acceptable SOCKS5 method", errAuth)
	}
	if _, err := c.Write([]byte{socksVersion, methodNoAuth}); err != nil {
		return identity{}, fmt.Errorf("answering greeting: %w", err)
	}
	return who, nil
}

// socksConnect decides, dials and tunnels one SOCKS5 CONNECT.
func (p *Proxy) socksConnect(c *clientConn, pre []byte, who identity, req socksRequest) {
	t, err := newTarget(req.host, req.port)
	if err != nil {
		_ = writeReply(c, replyGeneralFailure, nil)
		_ = c.Close()
		return
	}
	f := p.newFlow(t, engine.SchemeSOCKS5, engine.MethodConnect, who, c.RemoteAddr().String(), ListenerSOCKS5)
	ctx, cancel := context.WithTimeout(p.baseCtx, p.cfg.DialTimeout+p.cfg.HeaderTimeout)
	defer cancel()
	code, up, err := p.socksDial(ctx, f)
	if code != replySucceeded {
		_ = writeReply(c, code, nil)
		_ = c.Close()
		f.finish(err)
		return
	}
	defer p.releaseTunnel()
	if err := writeReply(c, replySucceeded, up.LocalAddr()); err != nil {
		_ = up.Close()
		_ = c.Close()
		f.finish(fmt.Errorf("answering SOCKS5 request: %w", err))
		return
	}
	p.tunnel(f, c, pre, up)
}

// socksDial decides and dials; on success it holds a tunnel slot.
func (p *Proxy) socksDial(ctx context.Context, f *flow) (byte, net.Conn, error) {
	if !f.decide(ctx) {
		return replyNotAllowed, nil, nil
	}
	if !p.acquireTunnel() {
		return replyGeneralFailure, nil, errTooManyTunnels
	}
	held := false
	defer func() {
		if !held {
			p.releaseTunnel() // also when dialing panics
		}
	}()
	up, err := p.dialFlow(ctx, f)
	if err != nil {
		return socksReplyFor(err), nil, err
	}
	held = true
	return replySucceeded, up, nil
}

// socksReplyFor maps a guard or dial failure to a reply code.
func socksReplyFor(err error) byte {
	var se *ssrfError
	var de *dialError
	switch {
	case errors.As(err, &se):
		return replyNotAllowed
	case !errors.As(err, &de):
		return replyGeneralFailure
	case de.class == dialRefused:
		return replyConnectionRefused
	case de.class == dialTimeout:
		return replyTTLExpired
	case de.class == dialDNS:
		return replyHostUnreachable
	}
	return replyHostUnreachable
}
