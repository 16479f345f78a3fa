package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/attempt"
)

// Listener names, as input.client.listener and Outcome.Listener.
const (
	ListenerHTTP   = "http"
	ListenerSOCKS5 = "socks5"
)

// Rules of the denies the proxy decides itself (the SSRF guard's are
// "ssrf:<class>").
const (
	ruleDeciderError = "proxy:decider-error"
	ruleTLSCheck     = "proxy:tls-check"
)

// flow is one decided connection (one plain HTTP request, or one tunnel)
// from its decision to its single Outcome.
type flow struct {
	p     *Proxy
	in    engine.Input
	dec   engine.Decision
	start time.Time

	up, down atomic.Int64
	upstream atomic.Pointer[string]
	done     atomic.Bool
}

// newFlow builds the decision input of DESIGN §3.
func (p *Proxy) newFlow(t target, scheme, method string, who identity, client, listener string) *flow {
	in := engine.Input{
		Host:      t.host,
		Port:      t.port,
		Scheme:    scheme,
		Method:    method,
		AttemptID: who.id,
		Attempt:   who.attempt,
		HostIsIP:  t.isIP,
		Client:    &engine.Client{Addr: client, Listener: listener},
	}
	return &flow{p: p, in: in, start: time.Now()}
}

// decide asks the Decider about f.in. A panic, an error or a zero
// Decision denies.
func (f *flow) decide(ctx context.Context) bool {
	f.dec = f.p.decide(ctx, f.in)
	return f.dec.Allow
}

func (p *Proxy) decide(ctx context.Context, in engine.Input) (d engine.Decision) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("decider panicked", "panic", r, "host", in.Host)
			d = engine.Decision{Reason: "policy evaluation failed", Rule: ruleDeciderError}
		}
	}()
	d, err := p.decider.Decide(ctx, in)
	if err != nil {
		return engine.Decision{
			Reason: fmt.Sprintf("policy evaluation failed: %v", err),
			Rule:   ruleDeciderError,
			ID:     d.ID,
		}
	}
	if !d.Allow && d.Reason == "" {
		d.Reason = "denied by policy"
	}
	return d
}

// plan resolves and checks the destination. An SSRF refusal replaces the
// allow with a logged deny and returns an *ssrfError.
func (f *flow) plan(ctx context.Context) ([]netip.AddrPort, error) {
	addrs, err := f.p.guard.plan(ctx, f.in.Host, f.in.Port)
	var se *ssrfError
	if errors.As(err, &se) {
		f.dec = f.p.ssrfDeny(f.in, se.class)
	}
	if de := (*dialError)(nil); errors.As(err, &de) {
		f.p.m.dialErrors.WithLabelValues(de.class).Inc()
	}
	return addrs, err
}

// ssrfDeny records a guard refusal as a decision of its own.
func (p *Proxy) ssrfDeny(in engine.Input, class string) engine.Decision {
	p.m.ssrf.WithLabelValues(class).Inc()
	d := engine.Decision{Reason: ssrfReason(class), Rule: "ssrf:" + class}
	if p.cfg.DecisionLogger != nil {
		d.ID = p.cfg.DecisionLogger.LogDecision(in, d)
	}
	if d.ID == "" {
		d.ID = attempt.NewID()
	}
	return d
}

// dial connects to the checked addresses.
func (f *flow) dial(ctx context.Context, addrs []netip.AddrPort) (net.Conn, error) {
	c, err := f.p.guard.dial(ctx, addrs)
	if de := (*dialError)(nil); errors.As(err, &de) {
		f.p.m.dialErrors.WithLabelValues(de.class).Inc()
		return nil, err
	}
	f.setUpstream(c.RemoteAddr())
	return c, nil
}

func (f *flow) setUpstream(a net.Addr) {
	s := a.String()
	f.upstream.Store(&s)
}

func (f *flow) upstreamAddr() string {
	if s := f.upstream.Load(); s != nil {
		return *s
	}
	return ""
}

// finish records the outcome once; later calls do nothing.
func (f *flow) finish(err error) {
	if !f.done.CompareAndSwap(false, true) {
		return
	}
	up, down := f.up.Load(), f.down.Load()
	f.p.m.bytes.WithLabelValues("up").Add(float64(up))
	f.p.m.bytes.WithLabelValues("down").Add(float64(down))
	if f.p.cfg.OnOutcome == nil {
		return
	}
	o := Outcome{
		DecisionID: f.dec.ID,
		AttemptID:  f.in.AttemptID,
		Host:       f.in.Host,
		Port:       f.in.Port,
		Scheme:     f.in.Scheme,
		Method:     f.in.Method,
		Listener:   f.in.Client.Listener,
		Client:     f.in.Client.Addr,
		Allowed:    f.dec.Allow,
		Reason:     f.dec.Reason,
		Rule:       f.dec.Rule,
		Upstream:   f.upstreamAddr(),
		BytesUp:    up,
		BytesDown:  down,
		Start:      f.start,
		Duration:   time.Since(f.start),
		Err:        err,
	}
	f.p.cfg.OnOutcome(o)
}
