package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/proxy"
)

var _ proxy.Decider = (*engine.Engine)(nil)

// newProxy maps the configuration onto the proxy's. A nil engine builds a
// proxy that denies everything (for `check`, which only validates).
func newProxy(cfg *config.Config, e *engine.Engine, bound string, log *slog.Logger, reg prometheus.Registerer, attempts *attempt.Registry) (*proxy.Proxy, error) {
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
		TLSPeekTimeout: cfg.Proxy.TLSPeekTimeout,
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

// listeners are the proxy's open listeners; nil when off.
type listeners struct {
	http, socks net.Listener
}

// listen opens the configured listeners; on error none stays open.
func listen(ctx context.Context, cfg *config.Config) (*listeners, error) {
	var lc net.ListenConfig
	var ls listeners
	open := func(name, addr string) (net.Listener, error) {
		if addr == "" {
			return nil, nil
		}
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			ls.close()
			return nil, fmt.Errorf("opening %s listener: %w", name, err)
		}
		return l, nil
	}
	var err error
	if ls.http, err = open("HTTP", cfg.HTTP); err != nil {
		return nil, err
	}
	if ls.socks, err = open("SOCKS5", cfg.SOCKS); err != nil {
		return nil, err
	}
	return &ls, nil
}

func (ls *listeners) close() {
	for _, l := range []net.Listener{ls.http, ls.socks} {
		if l != nil {
			_ = l.Close()
		}
	}
}

// addr is l's address, "" for a nil listener.
func addr(l net.Listener) string {
	if l == nil {
		return ""
	}
	return l.Addr().String()
}

// serve runs the proxy on the listeners; each Serve's end (other than
// Shutdown) is sent on the returned channel.
func serve(p *proxy.Proxy, ls *listeners, log *slog.Logger) <-chan error {
	errc := make(chan error, 2)
	start := func(name string, l net.Listener, f func(net.Listener) error) {
		if l == nil {
			return
		}
		go func() {
			err := f(l)
			if err != nil && err != proxy.ErrClosed {
				log.Error("listener stopped", "listener", name, "error", err)
				errc <- fmt.Errorf("serving %s: %w", name, err)
			}
		}()
	}
	start("http", ls.http, p.ServeHTTPProxy)
	start("socks5", ls.socks, p.ServeSOCKS)
	return errc
}
