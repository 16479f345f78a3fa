package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/admin"
	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/secrets"
	"github.com/regate/regate/proxy"
)

// newRegistry is the process's metrics registry: regate's collectors are
// added by the engine, the proxy and the admin API; Go runtime and process
// metrics here.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// adminWiring is what the admin API is built from.
type adminWiring struct {
	cfg      *config.Config
	engine   *engine.Engine
	proxy    *proxy.Proxy
	ls       listeners
	attempts *attempt.Registry
	bound    string            // the attempt of `regate run`
	own      *attemptListeners // serve's listeners of single attempts; nil under run
	reg      *prometheus.Registry
	ready    func() error
	log      *slog.Logger
	// secrets grants serve's attempts placeholders; nil: none.
	secrets *secrets.Broker
	// childTrust is added to the env of each new attempt.
	childTrust []string
}

// startAdmin opens the admin listener (nil, "" when off), keeps the proxy
// from ever dialing it, and serves the admin API on it.
func (a *app) startAdmin(ctx context.Context, w adminWiring) (*admin.Server, string, error) {
	at := w.cfg.Admin.Addr
	if at == "" {
		return nil, "", nil
	}
	var token string
	if !admin.IsUnix(at) {
		var generated bool
		var err error
		if token, generated, err = admin.LoadToken(w.cfg.Admin.TokenFile); err != nil {
			return nil, "", err
		}
		if generated {
			w.log.Info("generated an admin token", "file", w.cfg.Admin.TokenFile)
		}
	}
	ac := admin.Config{
		Engine: w.engine, Attempts: w.attempts, BoundAttempt: w.bound,
		Listeners: w.ls.addrs(), ChildProxies: w.ls.childProxies(), Self: a.self,
		Token: token, Ready: w.ready, Gatherer: w.reg, Registerer: w.reg,
		Version: regateVersion(), Logger: w.log,
	}
	if w.own != nil {
		ac.AttemptListeners = w.own
	}
	if w.secrets != nil && w.bound == "" {
		ac.Secrets = w.secrets
	}
	ac.ChildTrust = w.childTrust
	srv, err := admin.New(ac)
	if err != nil {
		return nil, "", err
	}
	if err := srv.Start(ctx); err != nil {
		return nil, "", err
	}
	l, err := admin.Listen(ctx, at)
	if err != nil {
		_ = srv.Shutdown(ctx)
		return nil, "", err
	}
	w.proxy.Protect(l.Addr())
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			w.log.Error("admin API stopped", "error", err)
		}
	}()
	shown := l.Addr().String()
	if admin.IsUnix(at) {
		shown = "unix:" + shown
	}
	return srv, shown, nil
}

// stopAdmin ends the admin API (nil: off) within d.
func stopAdmin(ctx context.Context, srv *admin.Server, d time.Duration, log *slog.Logger) {
	if srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("admin API did not stop cleanly", "error", err)
	}
}
