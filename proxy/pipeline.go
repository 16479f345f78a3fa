package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/regate/regate/engine"
)

// Conn is one tunnel entering the pipeline from a source: an HTTP CONNECT,
// a SOCKS5 CONNECT, or any later source (a transparent flow). The source
// has done what is its own (its handshake, naming the destination,
// identifying the client); the pipeline does the rest.
type Conn struct {
	// Client is the client connection: tracked for Shutdown while the
	// tunnel lives. Until Answer.Established hands it over the source owns
	// it; Answer.Refuse must close it.
	Client   net.Conn
	Dest     Dest     // as the client named it
	Who      Identity // from Proxy.Identify
	Listener string   // input.client.listener
	Scheme   string   // input.scheme
	Answer   Answerer
}

// Answerer is how a source tells its client what the pipeline did. The
// pipeline calls exactly one of its methods, once.
type Answerer interface {
	// Refuse answers a connection that is not made (403 / SOCKS5 0x02 for
	// a deny, 502 / 0x05 for a refused upstream, …) and closes the client.
	Refuse(Refusal) error
	// Established answers a connected upstream (200 / SOCKS5 success / the
	// SYN-ACK) and returns the connection to relay on, with the client
	// bytes the source already read past its handshake.
	Established(upstream net.Conn) (client net.Conn, buffered []byte, err error)
}

// Class is why a connection was refused; each source answers a class from
// a table of its own (httpStatus, socksReply).
type Class string

// Refusal classes.
const (
	ClassDenied      Class = "denied"      // the policy, or the proxy's own check, denied it
	ClassLimit       Class = "limit"       // a tunnel limit was reached (a logged deny)
	ClassClosing     Class = "closing"     // the proxy is shutting down
	ClassTimeout     Class = "timeout"     // resolving or dialing timed out
	ClassRefused     Class = "refused"     // the upstream refused the connection
	ClassDNS         Class = "dns"         // the name did not resolve
	ClassUnreachable Class = "unreachable" // another dial failure
	ClassInternal    Class = "internal"    // anything else
)

// Refusal is what a source needs to answer a connection that is not made.
type Refusal struct {
	Class    Class
	Dest     Dest
	Decision engine.Decision // the deny, for ClassDenied and ClassLimit
	Err      error           // the cause, for the other classes
}

// refusalClass is the one error classifier of the pipeline: nil is a deny of
// the policy.
func refusalClass(err error) Class {
	var se *ssrfError
	var de *dialError
	switch {
	case err == nil, errors.As(err, &se), errors.Is(err, errTLSCheck):
		return ClassDenied
	case errors.Is(err, errTooManyTunnels):
		return ClassLimit
	case errors.Is(err, ErrClosed):
		return ClassClosing
	case !errors.As(err, &de):
		return ClassInternal
	case de.class == dialTimeout:
		return ClassTimeout
	case de.class == dialRefused:
		return ClassRefused
	case de.class == dialDNS:
		return ClassDNS
	}
	return ClassUnreachable
}

// refusal describes f's refusal for err (nil: the policy denied it).
func (f *flow) refusal(err error) Refusal {
	return Refusal{
		Class:    refusalClass(err),
		Dest:     f.dest(),
		Decision: f.dec,
		Err:      err,
	}
}

// Handle runs one tunnel through the pipeline: decide → track → tunnel
// slot → plan and dial → answer → relay → one Outcome. ctx is the
// source's: derived from the proxy's base context (cancelled when Shutdown
// gives up draining); resolving and dialing are bounded by DialTimeout.
// Handle returns when the tunnel is over; the client is closed by then.
func (p *Proxy) Handle(ctx context.Context, c Conn) {
	f := p.newFlow(c.Dest, c.Scheme, engine.MethodConnect, c.Who, addrString(c.Client.RemoteAddr()), c.Listener)
	f.drive(func(f *flow) error { return p.tunnelStages(ctx, f, c) })
}

func (p *Proxy) tunnelStages(ctx context.Context, f *flow, c Conn) error {
	if !f.decide(ctx) {
		return p.refuse(c.Answer, f, nil)
	}
	release, ok := p.track(c.Client)
	if !ok {
		return p.refuse(c.Answer, f, ErrClosed)
	}
	defer release() // after the slot: Shutdown returns with no tunnel counted
	releaseSlot, refused := p.slots.acquire(f)
	if refused != "" {
		f.ownDeny(ruleTunnelLimit, refused)
		return p.refuse(c.Answer, f, errTooManyTunnels)
	}
	defer releaseSlot()
	up, err := p.connect(ctx, f)
	if err != nil {
		return p.refuse(c.Answer, f, err)
	}
	client, buffered, err := c.Answer.Established(up)
	if err != nil {
		_ = up.Close()
		if client != nil {
			_ = client.Close()
		}
		return fmt.Errorf("answering %s client: %w", c.Listener, err)
	}
	return p.tunnel(f, client, buffered, up)
}

// refuse answers f's refusal for err and returns the flow's outcome error
// (err itself: nil for a policy deny).
func (p *Proxy) refuse(a Answerer, f *flow, err error) error {
	if aerr := a.Refuse(f.refusal(err)); aerr != nil {
		p.log.Debug("answering a refusal", "host", f.in.Host, "listener", f.in.Client.Listener, "err", aerr)
	}
	return err
}

// connect plans and dials an allowed flow's destination.
func (p *Proxy) connect(ctx context.Context, f *flow) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	addrs, err := p.plan(ctx, f)
	if err != nil {
		return nil, err
	}
	return p.dial(ctx, f, addrs)
}

// plan resolves and checks the destination. An SSRF refusal replaces the
// allow with the proxy's own logged deny and returns an *ssrfError.
func (p *Proxy) plan(ctx context.Context, f *flow) ([]netip.AddrPort, error) {
	addrs, err := p.guard.plan(ctx, f.dest())
	var se *ssrfError
	if errors.As(err, &se) {
		p.m.ssrf.WithLabelValues(se.class).Inc()
		f.ownDeny("ssrf:"+se.class, ssrfReason(se.class))
	}
	if de := (*dialError)(nil); errors.As(err, &de) {
		p.m.dialErrors.WithLabelValues(de.class).Inc()
	}
	return addrs, err
}

// dial connects to the checked addresses.
func (p *Proxy) dial(ctx context.Context, f *flow, addrs []netip.AddrPort) (net.Conn, error) {
	c, err := p.guard.dial(ctx, addrs)
	if de := (*dialError)(nil); errors.As(err, &de) {
		p.m.dialErrors.WithLabelValues(de.class).Inc()
		return nil, err
	}
	f.setUpstream(c.RemoteAddr().String())
	return c, nil
}
