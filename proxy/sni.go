package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/regate/regate/engine"
)

// errTLSCheck is wrapped by every tunnel cut by the TLS check.
var errTLSCheck = errors.New("tunnel closed by the TLS check")

// maxPeek bounds what the TLS check buffers: a 16 KiB ClientHello plus
// record headers.
const maxPeek = maxClientHelloMessage + 4 + 5*64

// inspect reads the client's first bytes of a tunnel and returns what may
// be forwarded (nothing with an error, except io.EOF). Bytes that do not
// start a TLS handshake are returned untouched. A ClientHello is buffered
// (within maxPeek and TLSPeekTimeout) until complete; if its SNI names
// another host than the tunnel's, the Decider is asked again and a deny
// cuts the tunnel. Anything unparseable after a handshake byte fails closed.
func (p *Proxy) inspect(f *flow, client net.Conn, pre []byte, last *atomic.Int64) ([]byte, error) {
	buf := append(make([]byte, 0, len(pre)+4096), pre...)
	if len(buf) == 0 {
		first, err := p.readFirst(client, last)
		if len(first) == 0 {
			return nil, err
		}
		buf = append(buf, first...)
	}
	if buf[0] != recordTypeHandshake {
		return buf, nil
	}
	_ = client.SetReadDeadline(time.Now().Add(p.cfg.TLSPeekTimeout))
	tmp := make([]byte, 4096)
	for {
		sni, err := clientHelloSNI(buf)
		if err == nil {
			if err := p.checkSNI(f, sni); err != nil {
				return nil, err // nothing of a refused hello is forwarded
			}
			return buf, nil
		}
		if !errors.Is(err, errNeedMore) {
			return nil, p.tlsDeny(f, err.Error())
		}
		if len(buf) >= maxPeek {
			return nil, p.tlsDeny(f, "TLS ClientHello too large to check")
		}
		n, rerr := client.Read(tmp[:min(len(tmp), maxPeek-len(buf))])
		buf = append(buf, tmp[:n]...)
		if rerr != nil && n == 0 {
			return nil, p.tlsDeny(f, fmt.Sprintf("incomplete TLS ClientHello: %v", rerr))
		}
	}
}

// readFirst waits for the client's first bytes; while only the upstream
// talks (server-first protocols) the idle timeout does not end the wait.
func (p *Proxy) readFirst(client net.Conn, last *atomic.Int64) ([]byte, error) {
	buf := make([]byte, 4096)
	for {
		_ = client.SetReadDeadline(time.Now().Add(p.cfg.IdleTimeout))
		n, err := client.Read(buf)
		if n > 0 {
			last.Store(time.Now().UnixNano())
			return buf[:n], nil
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && !idleFor(last, p.cfg.IdleTimeout) {
			continue
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
}

// checkSNI asks the Decider about an SNI that names another host.
func (p *Proxy) checkSNI(f *flow, sni string) error {
	if sni == "" {
		return nil
	}
	host, isIP, err := engine.NormalizeHost(sni)
	if err != nil {
		return p.tlsDeny(f, fmt.Sprintf("invalid TLS server name: %v", err))
	}
	if host == f.in.Host {
		return nil
	}
	in := f.in
	in.Host, in.HostIsIP, in.Path = host, isIP, ""
	in.TLS = &engine.TLS{SNI: host}
	ctx, cancel := context.WithTimeout(p.baseCtx, p.cfg.DialTimeout)
	defer cancel()
	if d := p.decide(ctx, in); !d.Allow {
		f.setDecision(d)
		return fmt.Errorf("%w: server name %q: %s", errTLSCheck, host, d.Reason)
	}
	return nil
}

// tlsDeny cuts a tunnel whose ClientHello cannot be checked: the proxy's
// own deny.
func (p *Proxy) tlsDeny(f *flow, reason string) error {
	f.ownDeny(ruleTLSCheck, reason)
	return fmt.Errorf("%w: %s", errTLSCheck, reason)
}
