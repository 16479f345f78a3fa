package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regate/regate/internal/admin"
	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/secrets"
	"github.com/regate/regate/proxy"
)

// stack is what run and serve assemble: the engine, the attempts, the
// proxy on its listeners and the admin API. One assembly, one teardown.
type stack struct {
	cfg       *config.Config
	log       *slog.Logger
	engine    *startedEngine
	attempts  *attempt.Registry
	proxy     *proxy.Proxy
	ls        listeners
	admin     *admin.Server // nil when off
	adminAddr string        // "" when off
	// attemptListeners are serve's listeners of single attempts; nil
	// under run, whose listeners all belong to its attempt.
	attemptListeners *attemptListeners
	reg              prometheus.Registerer
	inspect          *proxy.Inspection // nil when HTTPS inspection is off
	pprof            *profiler         // nil when off
}

// stackOptions are what differs between run and serve.
type stackOptions struct {
	// bound is run's attempt: every listener belongs to it.
	bound *attempt.Attempt
	// ready is serve's listener readiness, for /health.
	ready func() error
	// listen opens the listeners; nil opens them on the host. Under
	// --isolate they are the ones created inside the namespace.
	listen func(context.Context, []listenerSpec) (listeners, error)
	// onOutcome is run's summary of failed connections.
	onOutcome func(proxy.Outcome)
	// secrets are the secrets kept outside the sandbox; nil: none.
	secrets *secrets.Broker
}

// assemble starts the engine (the policy compiles here, so its error comes
// before anything listens), builds the proxy, opens the listeners and the
// admin API. On error, whatever was started is stopped again.
func (a *app) assemble(ctx context.Context, cfg *config.Config, o stackOptions) (_ *stack, err error) {
	s := &stack{cfg: cfg, log: newLogger(cfg, a.stderr), attempts: attempt.NewRegistry()}
	defer func() {
		if err != nil {
			s.stop(ctx, slog.New(slog.DiscardHandler))
		}
	}()
	if cfg.Pprof != "" {
		if s.pprof, err = startProfiler(cfg.Pprof, s.log); err != nil {
			return nil, err
		}
	}
	reg := newRegistry()
	s.reg = reg
	if s.engine, err = a.startEngine(ctx, cfg, s.log, reg, true, false); err != nil {
		return nil, err
	}
	bound := ""
	if o.bound != nil {
		if err = s.attempts.Add(*o.bound); err != nil {
			return nil, err
		}
		bound = o.bound.ID
	}
	mode := config.ModeServe
	if o.bound != nil {
		mode = config.ModeRun
	}
	if s.inspect, err = newInspection(cfg, mode, s.log); err != nil {
		return nil, err
	}
	var childTrust []string
	if mode == config.ModeServe && s.inspect != nil {
		if childTrust, err = serveTrust(s.inspect); err != nil {
			return nil, err
		}
	}
	if s.proxy, err = newProxy(cfg, s.engine.Engine, bound, s.log, reg, s.attempts, o.onOutcome, s.inspect, o.secrets); err != nil {
		return nil, err
	}
	s.pprof.protect(s.proxy)
	open := listen
	if o.listen != nil {
		open = o.listen
	}
	if s.ls, err = open(ctx, listenerSpecs(cfg)); err != nil {
		return nil, err
	}
	if o.bound == nil {
		s.attemptListeners = newAttemptListeners(s.proxy, s.ls, cfg.Proxy.MaxAttemptListeners, s.log)
	}
	s.admin, s.adminAddr, err = a.startAdmin(ctx, adminWiring{cfg: cfg, engine: s.engine.Engine, proxy: s.proxy,
		ls: s.ls, attempts: s.attempts, bound: bound, own: s.attemptListeners, reg: reg, ready: o.ready, log: s.log,
		secrets: o.secrets, childTrust: childTrust})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// serve starts serving the proxy listeners; a listener's failure is sent
// on the channel.
func (s *stack) serve() <-chan error { return s.ls.serve(s.proxy, s.log) }

// stop tears the stack down in one order, within the shutdown timeout:
// the proxy stops accepting and drains (what is left at the deadline is
// cut), the admin API stops, every decision event reaches its sinks and
// observers, the engine stops. It is safe on a partly assembled stack; log
// receives what did not stop cleanly.
func (s *stack) stop(ctx context.Context, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	if s.attemptListeners != nil {
		s.attemptListeners.shutdown()
	}
	if s.proxy != nil {
		if err := s.proxy.Shutdown(ctx); err != nil {
			log.Warn("drain deadline passed; open connections were cut", "error", err)
		}
	}
	s.ls.close() // also those never served
	stopAdmin(ctx, s.admin, s.cfg.ShutdownTimeout, log)
	if s.engine != nil {
		s.engine.Flush(ctx)
		s.engine.stop(ctx, s.cfg.ShutdownTimeout)
	}
	s.pprof.stop()
}
