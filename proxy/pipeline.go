package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/parent"
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
	ClassParent      Class = "parent"      // the parent proxy refused or could not be reached
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
	case err == nil, errors.As(err, &se), errors.Is(err, errTLSCheck), errors.Is(err, errInspectOff):
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
	case de.class == dialParent:
		return ClassParent
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
	if f.dec.Inspect || p.secretsOf(f).Bound(f.in.Host, f.in.Port) {
		return p.inspectTunnel(ctx, f, c)
	}
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

// connect plans and dials an allowed flow's destination, directly or
// through its parent proxy.
func (p *Proxy) connect(ctx context.Context, f *flow) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	r, err := p.route(ctx, f, false)
	if err != nil {
		return nil, err
	}
	return p.dialRoute(ctx, f, r)
}

// route is how an allowed flow reaches its destination: the checked
// addresses, dialled directly; or a parent and what to ask it for.
type route struct {
	addrs   []netip.AddrPort // direct, or the parent asked by address
	parent  *parent.Parent
	targets []string // host:port to ask the parent for, in order
	// absolute is a plain request sent to an HTTP parent in absolute
	// form, by name (by address, a plain request is tunnelled to the
	// checked address, so that Host keeps the name).
	absolute bool
}

// route plans f's route (plain: a plain HTTP request). Direct, or by
// address through the parent, the guard resolves and checks as always;
// by name, it checks what it can (planForParent).
func (p *Proxy) route(ctx context.Context, f *flow, plain bool) (route, error) {
	d := f.dest()
	r := route{parent: p.cfg.Parents.For(d.Host, d.Port, plain)}
	r.absolute = plain && r.parent != nil && r.parent.PlainURL() != nil && !p.cfg.ParentByAddress
	if r.parent != nil && !p.cfg.ParentByAddress {
		err := p.counted(f, p.guard.planForParent(ctx, d))
		r.targets = []string{d.String()}
		return r, err
	}
	addrs, err := p.plan(ctx, f)
	if err != nil {
		return r, err
	}
	r.addrs = addrs
	if r.parent != nil {
		for _, a := range addrs {
			r.targets = append(r.targets, a.String())
		}
	}
	return r, nil
}

// dialRoute connects along r: the guard's dial, or a tunnel through the
// parent for each target in turn until one is made (a refusal of the
// parent's own ends it).
func (p *Proxy) dialRoute(ctx context.Context, f *flow, r route) (net.Conn, error) {
	if r.parent == nil {
		return p.dial(ctx, f, r.addrs)
	}
	var err error
	for _, target := range r.targets {
		var c net.Conn
		if c, err = r.parent.Tunnel(ctx, target); err == nil {
			f.setUpstream(r.parent.String() + " → " + target)
			return c, nil
		}
		if pe := (*parent.Error)(nil); errors.As(err, &pe) && pe.Status != "" && !strings.HasPrefix(pe.Status, "5") {
			break
		}
		if ctx.Err() != nil {
			break
		}
	}
	p.m.dialErrors.WithLabelValues(dialParent).Inc()
	return nil, &dialError{class: dialParent, err: err}
}

// plan resolves and checks the destination. An SSRF refusal replaces the
// allow with the proxy's own logged deny and returns an *ssrfError.
func (p *Proxy) plan(ctx context.Context, f *flow) ([]netip.AddrPort, error) {
	addrs, err := p.guard.plan(ctx, f.dest())
	return addrs, p.counted(f, err)
}

// counted records a planning error: an SSRF refusal as the proxy's own
// deny, a failure in the metrics.
func (p *Proxy) counted(f *flow, err error) error {
	var se *ssrfError
	if errors.As(err, &se) {
		p.m.ssrf.WithLabelValues(se.class).Inc()
		f.ownDeny("ssrf:"+se.class, ssrfReason(se.class))
	}
	if de := (*dialError)(nil); errors.As(err, &de) {
		p.m.dialErrors.WithLabelValues(de.class).Inc()
	}
	return err
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
