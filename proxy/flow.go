package proxy

import (
	"context"
	"errors"
	"fmt"
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
	ruleTunnelLimit  = "proxy:tunnel-limit"
)

// errPanicked is a flow's outcome error when one of its stages panicked;
// the panic itself goes on to the source's recovery.
var errPanicked = errors.New("connection handler panicked")

// flow is one decided connection (one plain HTTP request, or one tunnel)
// from its decision to its single Outcome.
type flow struct {
	p      *Proxy
	in     engine.Input
	dec    engine.Decision // written only through setDecision
	denied bool            // dec is a deny: final
	start  time.Time

	up, down atomic.Int64
	upstream atomic.Pointer[string]
	done     atomic.Bool
}

// newFlow builds the decision input (the README's Policy input table).
func (p *Proxy) newFlow(t Dest, scheme, method string, who Identity, client, listener string) *flow {
	in := engine.Input{
		Host:      t.Host,
		Port:      t.Port,
		Scheme:    scheme,
		Method:    method,
		AttemptID: who.ID,
		Attempt:   who.Attempt,
		HostIsIP:  t.IsIP,
		Client:    &engine.Client{Addr: client, Listener: listener},
	}
	if t.Fake.IsValid() {
		in.Transparent = &engine.Transparent{Addr: t.Fake.String()}
	}
	return &flow{p: p, in: in, start: time.Now()}
}

// dest is the destination the flow was built for.
func (f *flow) dest() Dest {
	d := Dest{Host: f.in.Host, Port: f.in.Port, IsIP: f.in.HostIsIP}
	if f.in.Transparent != nil {
		d.Fake, _ = netip.ParseAddr(f.in.Transparent.Addr)
	}
	return d
}

// drive runs a flow's stages and records its one Outcome with the error
// they return. This is the only place a flow is finished. A panic in a
// stage is recorded as errPanicked, then goes on to the source's recovery.
func (f *flow) drive(stages func(*flow) error) {
	err := errPanicked
	defer func() { f.finish(err) }()
	err = stages(f)
}

// setDecision records what decides the flow: a deny replaces an allow
// (the SSRF guard, the TLS check, a limit after the policy allowed), and
// nothing replaces a deny.
func (f *flow) setDecision(d engine.Decision) {
	if f.denied {
		return
	}
	f.dec, f.denied = d, !d.Allow
}

// decide asks the Decider about f.in. A panic, an error or a zero
// Decision denies.
func (f *flow) decide(ctx context.Context) bool {
	f.setDecision(f.p.decide(ctx, f.in))
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
		return engine.Decision{Reason: fmt.Sprintf("policy evaluation failed: %v", err), Rule: ruleDeciderError, ID: d.ID}
	}
	if !d.Allow && d.Reason == "" {
		d.Reason = "denied by policy"
	}
	return d
}

// ownDeny is the one path of the denies the proxy decides itself (the
// SSRF guard, the TLS check, tunnel limits): it replaces the flow's
// decision, logs it as a decision-log event of its own, counts it, and
// always gives it a decision id.
func (f *flow) ownDeny(rule, reason string) engine.Decision {
	p := f.p
	p.m.ownDenies.WithLabelValues(rule).Inc()
	d := engine.Decision{Reason: reason, Rule: rule}
	if p.cfg.DecisionLogger != nil {
		d.ID = p.cfg.DecisionLogger.LogDecision(f.in, d)
	}
	if d.ID == "" {
		d.ID = attempt.NewID()
	}
	f.setDecision(d)
	return d
}

func (f *flow) setUpstream(s string) { f.upstream.Store(&s) }

func (f *flow) upstreamAddr() string {
	if s := f.upstream.Load(); s != nil {
		return *s
	}
	return ""
}

// finish records the outcome once; only drive calls it.
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

// Dropped is traffic a source drops without asking the policy (an
// isolated command's UDP): it is still a deny decision event.
type Dropped struct {
	Dest             Dest
	Scheme           string
	Who              Identity
	Client, Listener string
	Rule, Reason     string
}

// Drop records d as the proxy's own deny: logged, counted and observed
// like any other, with an outcome.
func (p *Proxy) Drop(d Dropped) {
	f := p.newFlow(d.Dest, d.Scheme, "", d.Who, d.Client, d.Listener)
	f.drive(func(f *flow) error {
		f.ownDeny(d.Rule, d.Reason)
		return nil
	})
}
