// Package engine decides connections with an embedded OPA: it loads policy
// from the embedded default, local files and bundles, and remote bundles
// through OPA's plugin manager; evaluates one prepared query per decision;
// reloads atomically; and logs every decision in OPA's decision-log format.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/discovery"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Config fields left zero.
const (
	DefaultDecisionTimeout = 100 * time.Millisecond
	DefaultDebounce        = 150 * time.Millisecond
	DefaultLogQueue        = 8192
	DefaultRingSize        = 1000
)

// Config configures an Engine. The zero value plus a Logger is a working
// engine on the embedded default policy.
type Config struct {
	// Policies are local sources: .rego files, directories of Rego, JSON and
	// YAML, bundle directories (with .manifest) and .tar.gz bundles. Empty
	// means the embedded default, unless OPA configures bundles.
	Policies []string
	// Default is the embedded default policy, used when no other source is
	// given. Tests may replace it.
	Default fs.FS
	// Allow and Deny are patterns written to data.regate.allow and
	// data.regate.deny (object form, keyed by pattern).
	Allow, Deny []string
	// Data is written under data at its top-level keys (e.g. {"regate":
	// {"methods": [...]}}), after Allow and Deny.
	Data map[string]any
	// OPA is OPA's own configuration (JSON or YAML): services, bundles,
	// decision_logs, status, keys, labels, persistence_directory.
	OPA []byte
	// VerificationKeyID selects the key in OPA's `keys` that verifies local
	// bundles when their signature names none. Local bundles are verified
	// whenever keys are configured.
	VerificationKeyID string
	// DecisionTimeout bounds one evaluation (default 100 ms).
	DecisionTimeout time.Duration
	// DisableCache turns off the decision cache (decisions of a policy
	// without non-deterministic built-ins, remembered until the next policy
	// or data change).
	DisableCache bool
	// Watch enables fsnotify reload of local sources.
	Watch bool
	// Debounce is the quiet time after a file event before reloading.
	Debounce time.Duration
	// DecisionLog, if set, receives every decision event as a JSON line.
	DecisionLog io.Writer
	// LogQueue bounds the decision-log queue; RingSize the in-memory ring.
	LogQueue, RingSize int
	// ID and Version label decision-log events (labels.id, labels.version).
	ID, Version string
	Logger      *slog.Logger
	Registerer  prometheus.Registerer
}

// Engine decides connections. Create it with New, then Start it.
type Engine struct {
	cfg     Config
	log     *slog.Logger
	metrics *collectors
	store   storage.Store
	manager *plugins.Manager
	opaRaw  []byte
	remote  bool // OPA config names bundles

	query   atomic.Pointer[prepared]
	cache   atomic.Pointer[decisionCache]
	reload  sync.Mutex // serialises local reloads
	status  statusBox
	logs    *pipeline
	watcher *watcher
	started atomic.Bool
	running atomic.Bool // OPA's plugins were started and must be stopped
}

// New validates cfg and builds an engine; it starts nothing.
func New(cfg Config) (*Engine, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DecisionTimeout <= 0 {
		cfg.DecisionTimeout = DefaultDecisionTimeout
	}
	if cfg.Debounce <= 0 {
		cfg.Debounce = DefaultDebounce
	}
	if cfg.LogQueue <= 0 {
		cfg.LogQueue = DefaultLogQueue
	}
	if cfg.RingSize <= 0 {
		cfg.RingSize = DefaultRingSize
	}
	if cfg.ID == "" {
		cfg.ID = "regate"
	}
	var errs []error
	for _, p := range append(append([]string{}, cfg.Allow...), cfg.Deny...) {
		if err := ValidatePattern(p); err != nil {
			errs = append(errs, err)
		}
	}
	if len(cfg.OPA) > 0 {
		if err := ValidateOPAConfig(cfg.OPA); err != nil {
			errs = append(errs, err)
		}
	}
	raw, remote, err := buildOPAConfig(cfg.OPA, cfg.ID, cfg.Version)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(cfg.Policies) == 0 && cfg.Default == nil && !remote {
		return nil, errors.New("no policy source: neither policies, a default nor OPA bundles")
	}
	e := &Engine{
		cfg:    cfg,
		log:    cfg.Logger.With("component", "engine"),
		opaRaw: raw,
		remote: remote,
		store:  inmem.NewWithOpts(inmem.OptRoundTripOnWrite(false), inmem.OptReturnASTValuesOnRead(true)),
	}
	if e.metrics, err = newMetrics(cfg.Registerer); err != nil {
		return nil, err
	}
	e.logs = newPipeline(cfg, e.metrics)
	return e, nil
}

// Start loads the local policy (an error here is fatal: nothing would
// decide), starts OPA's plugins (remote bundles, status, decision-log
// upload), the decision-log pipeline and, if configured, the watcher.
func (e *Engine) Start(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("engine already started")
	}
	opaLog := opaLogger{e.cfg.Logger.With("component", "opa")}
	mgr, err := plugins.New(e.opaRaw, e.cfg.ID, e.store, plugins.Logger(opaLog), plugins.ConsoleLogger(opaLog))
	if err != nil {
		return fmt.Errorf("configuring OPA: %w", err)
	}
	if err := mgr.Init(ctx); err != nil {
		return fmt.Errorf("initialising OPA: %w", err)
	}
	e.manager = mgr
	mgr.RegisterCompilerTrigger(e.onCompile)
	if err := e.registerCacheReset(ctx); err != nil {
		return err
	}
	disco, err := discovery.New(mgr, discovery.Factories(map[string]plugins.Factory{
		sinkPluginName: sinkFactory{e.logs},
	}))
	if err != nil {
		return fmt.Errorf("configuring OPA plugins: %w", err)
	}
	mgr.Register(discovery.Name, disco)
	e.watchRemote() // remote.go: bundle failures in Ready/Status, loads metric
	if err := e.Reload(ctx); err != nil {
		return err
	}
	e.updateLogRouting()
	e.logs.start(logs.Lookup(mgr), mgr.Labels())
	e.running.Store(true)
	if err := mgr.Start(ctx); err != nil {
		return fmt.Errorf("starting OPA plugins: %w", err)
	}
	if e.cfg.Watch && len(e.cfg.Policies) > 0 {
		w, err := newWatcher(e.cfg.Policies, e.cfg.Debounce, e.log, func() {
			if err := e.Reload(context.Background()); err != nil {
				e.log.Error("reload refused; last good policy keeps deciding", "error", err)
			}
		})
		if err != nil {
			return fmt.Errorf("watching policy sources: %w", err)
		}
		e.watcher = w
	}
	return nil
}

// Stop stops the watcher and OPA's plugins and flushes the decision log.
func (e *Engine) Stop(ctx context.Context) {
	if e.watcher != nil {
		e.watcher.close()
	}
	e.logs.stop(ctx)
	if e.running.CompareAndSwap(true, false) {
		e.manager.Stop(ctx)
	}
}

// Manager is OPA's plugin manager, for the admin API (store, compiler).
func (e *Engine) Manager() *plugins.Manager { return e.manager }

// Store is the engine's OPA store.
func (e *Engine) Store() storage.Store { return e.store }

// registerCacheReset installs the store trigger that drops cached decisions
// on every commit.
func (e *Engine) registerCacheReset(ctx context.Context) error {
	e.cache.Store(newDecisionCache())
	txn, err := e.store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return fmt.Errorf("registering store trigger: %w", err)
	}
	if _, err := e.store.Register(ctx, txn, storage.TriggerConfig{OnCommit: e.resetCache}); err != nil {
		e.store.Abort(ctx, txn)
		return fmt.Errorf("registering store trigger: %w", err)
	}
	if err := e.store.Commit(ctx, txn); err != nil {
		return fmt.Errorf("registering store trigger: %w", err)
	}
	return nil
}
