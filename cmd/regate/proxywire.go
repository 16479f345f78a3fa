package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/childenv"
	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/parent"
	"github.com/regate/regate/internal/secrets"
	"github.com/regate/regate/proxy"
)

var _ proxy.Decider = (*engine.Engine)(nil)

// newProxy maps the configuration onto the proxy's. A nil engine builds a
// proxy that denies everything (for `check`, which only validates);
// onOutcome (nil: none) receives every connection's outcome.
func newProxy(cfg *config.Config, e *engine.Engine, bound string, log *slog.Logger, reg prometheus.Registerer, attempts *attempt.Registry, onOutcome func(proxy.Outcome), insp *proxy.Inspection, set *secrets.Broker) (*proxy.Proxy, error) {
	pc := proxy.Config{
		Logger:         log,
		Attempts:       attempts,
		BoundAttempt:   bound,
		AllowAnonymous: cfg.AllowAnonymous,
		AllowCIDRs:     cfg.AllowCIDRs,
		Hosts:          cfg.Hosts,
		Registerer:     reg,
		HeaderTimeout:  cfg.Proxy.HeaderTimeout,
		MaxHeaderBytes: cfg.Proxy.MaxHeaderBytes,
		DialTimeout:    cfg.Proxy.DialTimeout,
		IdleTimeout:    cfg.Proxy.IdleTimeout,
		MaxTunnels:     cfg.Proxy.MaxTunnels,

		MaxTunnelsPerClient: cfg.Proxy.MaxTunnelsPerClient,
		TLSPeekTimeout:      cfg.Proxy.TLSPeekTimeout,
		OnOutcome:           onOutcome,
		Inspect:             insp,
		Secrets:             set,
	}
	chain, err := upstreamChain(cfg.Proxy)
	if err != nil {
		return nil, err
	}
	pc.Parents, pc.ParentByAddress = chain, cfg.Proxy.Upstream.ByAddress
	if chain != nil {
		log.Info("chaining to a parent proxy", "upstream", chain.String(), "by_address", pc.ParentByAddress)
	}
	var d proxy.Decider = proxy.DeciderFunc(func(context.Context, engine.Input) (engine.Decision, error) {
		return engine.Decision{Reason: "no policy engine"}, nil
	})
	if e != nil {
		d = e
		pc.DecisionLogger = e
	}
	p, err := proxy.New(pc, d)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// upstreamChain is the parent proxy chain of the configuration; nil when
// none. proxy.upstream env reads regate's own environment (the child's
// variables are set on the child only).
func upstreamChain(p config.ProxyLimits) (*parent.Chain, error) {
	u := p.Upstream
	o := parent.Options{CAFile: u.CAFile, AuthFile: u.AuthFile, DialTimeout: p.DialTimeout}
	switch u.URL {
	case "":
		return nil, nil
	case config.UpstreamEnv:
		chain, err := parent.NewEnvChain(parent.FromEnvironment(os.Getenv), u.No, o)
		if err != nil {
			return nil, fmt.Errorf("proxy.upstream env: %w", err)
		}
		return chain, nil
	}
	chain, err := parent.NewChain(u.URL, u.No, o)
	if err != nil {
		return nil, fmt.Errorf("proxy.upstream: %w", err)
	}
	return chain, nil
}

// listenerSpec is one proxy listener of the wiring: its name (as
// input.client.listener and in /v1/status), its address, how the proxy
// serves it, and which of the child's variables point at it. A new kind of
// listener is one more entry of listenerSpecs.
type listenerSpec struct {
	name  string
	addr  string // "" when off
	serve func(*proxy.Proxy, net.Listener) error
	// serveFor serves a listener bound to one attempt (serve's
	// "listeners": true); nil when the kind has none.
	serveFor func(*proxy.Proxy, net.Listener, string) error
	env      childenv.Kind // 0: no variable points at it
}

// listenerSpecs are the configured proxy listeners.
func listenerSpecs(cfg *config.Config) []listenerSpec {
	return []listenerSpec{
		{name: proxy.ListenerHTTP, addr: cfg.HTTP, serve: (*proxy.Proxy).ServeHTTPProxy, serveFor: (*proxy.Proxy).ServeHTTPProxyFor, env: childenv.HTTP},
		{name: proxy.ListenerSOCKS5, addr: cfg.SOCKS, serve: (*proxy.Proxy).ServeSOCKS, serveFor: (*proxy.Proxy).ServeSOCKSFor, env: childenv.SOCKS5},
	}
}

// openListener is a listener spec with its open listener.
type openListener struct {
	listenerSpec
	ln net.Listener
}

// listeners are the open proxy listeners, in spec order.
type listeners []openListener

// listen opens every spec that is on; on error none stays open.
func listen(ctx context.Context, specs []listenerSpec) (listeners, error) {
	var lc net.ListenConfig
	var ls listeners
	for _, spec := range specs {
		if spec.addr == "" {
			continue
		}
		l, err := lc.Listen(ctx, "tcp", spec.addr)
		if err != nil {
			ls.close()
			return nil, fmt.Errorf("opening %s listener: %w", spec.name, err)
		}
		ls = append(ls, openListener{listenerSpec: spec, ln: l})
	}
	return ls, nil
}

func (ls listeners) close() {
	for _, l := range ls {
		_ = l.ln.Close()
	}
}

// addr is the address of the listener name, "" when it is off.
func (ls listeners) addr(name string) string {
	for _, l := range ls {
		if l.name == name {
			return l.ln.Addr().String()
		}
	}
	return ""
}

// addrs are the open listeners' addresses by name.
func (ls listeners) addrs() map[string]string {
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		m[l.name] = l.ln.Addr().String()
	}
	return m
}

// childProxies are the listeners the child's variables point at.
func (ls listeners) childProxies() []childenv.Listener {
	var out []childenv.Listener
	for _, l := range ls {
		if l.env != 0 {
			out = append(out, childenv.Listener{Kind: l.env, Addr: l.ln.Addr().String()})
		}
	}
	return out
}

// serve runs the proxy on the listeners; each Serve's end (other than
// Shutdown) is sent on the returned channel.
func (ls listeners) serve(p *proxy.Proxy, log *slog.Logger) <-chan error {
	errc := make(chan error, len(ls))
	for _, l := range ls {
		go func() {
			err := l.serve(p, l.ln)
			if err != nil && err != proxy.ErrClosed {
				log.Error("listener stopped", "listener", l.name, "error", err)
				errc <- fmt.Errorf("serving %s: %w", l.name, err)
			}
		}()
	}
	return errc
}
