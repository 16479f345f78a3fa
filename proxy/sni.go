package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/regate/regate/engine"
)

// errTLSCheck is wrapped by every tunnel cut by the TLS check.
var errTLSCheck = errors.New("tunnel closed by the TLS check")

// maxPeek bounds what the TLS check buffers: a 16 KiB ClientHello plus
// record headers.
const maxPeek = maxClientHelloMessage + 4 + 5*64

// checkHello completes and checks the ClientHello that buf begins: it is
// buffered (within maxPeek and TLSPeekTimeout) until complete; if its SNI
// names another host than the tunnel's, the Decider is asked again and a
// deny cuts the tunnel. It returns what may be forwarded; nothing of a
// refused hello is. Anything unparseable fails closed.
func (p *Proxy) checkHello(f *flow, client net.Conn, buf []byte) ([]byte, error) {
	_ = client.SetReadDeadline(time.Now().Add(p.cfg.TLSPeekTimeout))
	tmp := make([]byte, 4096)
	for {
		sni, err := clientHelloSNI(buf)
		if err == nil {
			if err := p.checkSNI(f, sni); err != nil {
				return nil, err
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
