package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/private"
	"github.com/regate/regate/policies"
)

// newLogger builds the process logger on w (standard error).
func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// decisionLog opens the decision-log sink: nil when off, stdout for "-",
// else the file (appended; created 0600; an existing one must be ours and
// not writable by others, internal/private's Log rule).
func (a *app) decisionLog(cfg *config.Config) (io.Writer, func(), error) {
	switch cfg.DecisionLog {
	case "":
		return nil, func() {}, nil
	case "-":
		return a.stdout, func() {}, nil
	}
	f, err := os.OpenFile(cfg.DecisionLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("opening decision log: %w", err)
	}
	if err := private.Check(f, private.Log); err != nil {
		_ = f.Close()
		return nil, nil, fmt.Errorf("opening decision log: %w", err)
	}
	return f, func() { _ = f.Close() }, nil
}

// engineConfig maps the configuration onto the engine's. labels.id is left
// to the engine: a UUID per process, or the one kept under OPA's
// persistence_directory.
func engineConfig(cfg *config.Config, log *slog.Logger, decisions io.Writer, reg *prometheus.Registry) engine.Config {
	return engine.Config{
		Policies:          cfg.Policies,
		Default:           policies.FS,
		Allow:             cfg.Allow,
		Deny:              cfg.Deny,
		Data:              cfg.Data,
		OPA:               cfg.OPA,
		VerificationKeyID: cfg.VerificationKeyID,
		DecisionTimeout:   cfg.DecisionTimeout,
		DisableCache:      !cfg.DecisionCache,
		Audit:             cfg.Audit,
		Watch:             cfg.Watch,
		DecisionLog:       decisions,
		Version:           regateVersion(),
		Logger:            log,
		Registerer:        reg,
		Gatherer:          reg,
	}
}

// startedEngine is a running engine and how to stop it.
type startedEngine struct {
	*engine.Engine
	closeLog func()
}

// startEngine builds and starts the engine: the policy is compiled here, so
// a policy error (with file and line) is returned before anything serves.
// OPA's console logs (decision_logs.console, status.console) go to
// standard error, as `opa run` prints them.
//
// An offline engine (regate check) reports nothing anywhere: no status, no
// decision-log upload.
func (a *app) startEngine(ctx context.Context, cfg *config.Config, log *slog.Logger, reg *prometheus.Registry, watch, offline bool) (*startedEngine, error) {
	w, closeLog, err := a.decisionLog(cfg)
	if err != nil {
		return nil, err
	}
	ec := engineConfig(cfg, log, w, reg)
	ec.Watch = watch && cfg.Watch
	ec.Offline = offline
	ec.Console = a.stderr
	e, err := engine.New(ec)
	if err != nil {
		closeLog()
		return nil, fmt.Errorf("configuring engine: %w", err)
	}
	if err := e.Start(ctx); err != nil {
		// A failed Start has already stopped whatever it started: there is
		// nothing to Stop, only the log file to close.
		closeLog()
		return nil, fmt.Errorf("starting engine: %w", err)
	}
	return &startedEngine{Engine: e, closeLog: closeLog}, nil
}

// stop flushes the decision log and stops the engine within d.
func (e *startedEngine) stop(ctx context.Context, d time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
	defer cancel()
	e.Stop(ctx)
	e.closeLog()
}

// waitReady waits until a policy decides and OPA's bundle plugin (remote
// bundles) has activated, or timeout passes, woken by OPA's plugin status
// changes.
func waitReady(ctx context.Context, e *engine.Engine, timeout time.Duration) error {
	if policyReady(e) == nil {
		return nil
	}
	changed := make(chan struct{}, 1)
	e.Manager().RegisterPluginStatusListener("regate-wait-ready", func(map[string]*plugins.Status) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer e.Manager().UnregisterPluginStatusListener("regate-wait-ready")
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		err := policyReady(e)
		if err == nil {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return fmt.Errorf("policy not ready after %v: %w", timeout, err)
		case <-ctx.Done():
			return fmt.Errorf("waiting for policy: %w", ctx.Err())
		}
	}
}

// policyReady is nil when a policy is loaded and remote bundles, if any,
// are activated. (Engine.Ready also requires every other OPA plugin to
// report OK.)
func policyReady(e *engine.Engine) error {
	st := e.Status()
	if !st.Loaded {
		return errors.New(engine.ReasonNoPolicy)
	}
	if b := st.Plugins["bundle"]; b != nil && b.State != plugins.StateOK {
		msg := fmt.Sprintf("bundle plugin is %s", b.State)
		if b.Message != "" {
			msg += ": " + b.Message
		}
		if err := e.Fresh(); err != nil {
			msg += ": " + err.Error()
		}
		return errors.New(msg)
	}
	return nil
}
