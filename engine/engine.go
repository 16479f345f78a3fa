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
	"github.com/open-policy-agent/opa/v1/topdown/cache"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults for Config fields left zero.
const (
	DefaultDecisionTimeout = 100 * time.Millisecond
	DefaultDebounce        = 150 * time.Millisecond
	DefaultLogQueue        = 8192
	DefaultRingSize        = 1000
)

// abortTimeout bounds the clean-up of a failed Start: what has not stopped
// by then is abandoned rather than waited for.
const abortTimeout = 5 * time.Second

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
	// Audit is report-only mode for every decision: what the policy
	// denies is allowed and marked audit, with the policy's reason and
	// rule, exactly as if the policy had returned audit: true. Fail-closed
	// denies stay denies. An attempt can ask for the same (Attempt.Audit).
	Audit bool
	// Watch enables fsnotify reload of local sources.
	Watch bool
	// Debounce is the quiet time after a file event before reloading.
	Debounce time.Duration
	// DecisionLog, if set, receives every decision event as a JSON line.
	DecisionLog io.Writer
	// LogQueue bounds the decision-log queue; RingSize the in-memory ring.
	LogQueue, RingSize int
	// ID is this instance's labels.id on decision-log events and status
	// reports; empty: a fresh UUID, or the one kept under OPA's
	// persistence_directory when that is configured (instanceid.go).
	ID string
	// Version is regate's version, the label regate_version.
	Version string
	// Offline keeps OPA from reporting anywhere: no status plugin, no
	// decision-log upload (regate check). Bundles are still downloaded.
	Offline bool
	// Console receives OPA's console logs (decision_logs.console and
	// status.console: one JSON line each, as OPA prints them); nil: discarded.
	Console    io.Writer
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Gatherer, when set, is what OPA's status reports under
	// metrics.prometheus, as `opa run --server` reports its own registry.
	Gatherer prometheus.Gatherer
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
	rem     atomic.Pointer[remote]
	// ndbCache is OPA's nd_builtin_cache setting: log the results of
	// non-deterministic built-ins with each decision.
	ndbCache atomic.Bool
	// iqCache and iqValueCache are OPA's inter-query caches (http.send
	// and friends), configured by OPA's `caching`, shared by decisions;
	// cacheStop ends their eviction.
	iqCache      cache.InterQueryCache
	iqValueCache cache.InterQueryValueCache
	cacheStop    context.CancelFunc

	query   atomic.Pointer[prepared]
	cache   atomic.Pointer[decisionCache]
	reload  sync.Mutex // serialises local reloads
	status  statusBox
	logs    *pipeline
	watcher *watcher
	started atomic.Bool
	// managerDone is set once OPA's plugin manager, whose goroutines run
	// from its creation, has been stopped.
	managerDone atomic.Bool

	// Set by New; tests of a failed Start replace them.
	newWatcher   func(sources []string, debounce time.Duration, log *slog.Logger, reload func()) (*watcher, error)
	abortTimeout time.Duration
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
	raw, remote, err := buildOPAConfig(cfg.OPA, opaOptions{version: cfg.Version, offline: cfg.Offline})
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

		newWatcher:   newWatcher,
		abortTimeout: abortTimeout,
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
//
// A failed Start leaves nothing running: it stops what it had started, in
// reverse order, through Stop, within abortTimeout whatever ctx says. An
// OPA plugin that does not stop by then is abandoned and logged rather than
// left to hang the caller. A failed engine cannot be started again, and
// needs no Stop (which is then a no-op).
func (e *Engine) Start(ctx context.Context) (err error) {
	if !e.started.CompareAndSwap(false, true) {
		return errors.New("engine already started")
	}
	defer func() {
		if err != nil {
			e.abort(ctx)
		}
	}()
	if err := e.startManager(ctx); err != nil {
		return err
	}
	// Local policy before OPA's plugins are registered: a manager with
	// plugins that never started cannot be stopped (OPA's decision-log
	// plugin would wait forever for its loop).
	if err := e.Reload(ctx); err != nil {
		return err
	}
	e.updateLogRouting()
	disco, err := discovery.New(e.manager, discovery.Factories(map[string]plugins.Factory{
		sinkPluginName: sinkFactory{e.logs},
	}), discovery.Metrics(e.opaMetrics()))
	if err != nil {
		return fmt.Errorf("configuring OPA plugins: %w", err)
	}
	e.manager.Register(discovery.Name, disco)
	e.watchRemote() // remote.go: bundle failures in Ready/Status, loads metric
	if err := e.manager.Start(ctx); err != nil {
		return fmt.Errorf("starting OPA plugins: %w", err)
	}
	e.logs.start(logs.Lookup(e.manager), e.manager.Labels())
	return e.startWatcher()
}

// startManager creates and initialises OPA's plugin manager, whose own
// goroutines run from then on, and installs regate's triggers on it.
func (e *Engine) startManager(ctx context.Context) error {
	if e.cfg.ID == "" {
		id, err := instanceID(e.opaRaw)
		if err != nil {
			return err
		}
		e.cfg.ID = id
	}
	opaLog := opaLogger{e.cfg.Logger.With("component", "opa")}
	opts := []func(*plugins.Manager){plugins.Logger(opaLog), plugins.ConsoleLogger(consoleLogger(e.cfg.Console))}
	if e.cfg.Registerer != nil {
		// status.prometheus registers OPA's status collectors here.
		opts = append(opts, plugins.WithPrometheusRegister(e.cfg.Registerer))
	}
	mgr, err := plugins.New(e.opaRaw, e.cfg.ID, e.store, opts...)
	if err != nil {
		return fmt.Errorf("configuring OPA: %w", err)
	}
	e.manager = mgr
	if err := mgr.Init(ctx); err != nil {
		return fmt.Errorf("initialising OPA: %w", err)
	}
	mgr.RegisterCompilerTrigger(e.onCompile)
	cacheCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	e.cacheStop = stop
	e.iqCache = cache.NewInterQueryCacheWithContext(cacheCtx, mgr.InterQueryBuiltinCacheConfig())
	e.iqValueCache = cache.NewInterQueryValueCache(cacheCtx, mgr.InterQueryBuiltinCacheConfig())
	e.ndbCache.Store(mgr.GetConfig().NDBuiltinCacheEnabled())
	mgr.RegisterNDCacheTrigger(func(enabled bool) { e.ndbCache.Store(enabled) })
	return e.registerCacheReset(ctx)
}

// startWatcher starts the fsnotify reload of local sources, if configured.
func (e *Engine) startWatcher() error {
	if !e.cfg.Watch || len(e.cfg.Policies) == 0 {
		return nil
	}
	w, err := e.newWatcher(e.cfg.Policies, e.cfg.Debounce, e.log, func() {
		if err := e.Reload(context.Background()); err != nil {
			e.log.Error("reload refused; last good policy keeps deciding", "error", err)
		}
	})
	if err != nil {
		return fmt.Errorf("watching policy sources: %w", err)
	}
	e.watcher = w
	return nil
}

// abort undoes a Start that failed part-way, through Stop, bounded by
// abortTimeout: Start may have failed because ctx ended.
func (e *Engine) abort(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.abortTimeout)
	defer cancel()
	e.Stop(ctx)
}

// Stop stops, in the reverse order of Start and each within ctx, the
// watcher, the decision-log pipeline (delivering what is queued) and OPA's
// plugins and manager. It is safe before Start, after a failed Start and
// more than once.
func (e *Engine) Stop(ctx context.Context) {
	if e.watcher != nil {
		e.watcher.close()
	}
	e.logs.stop(ctx)
	if e.manager != nil && e.managerDone.CompareAndSwap(false, true) {
		e.stopManager(ctx)
	}
	if e.cacheStop != nil {
		e.cacheStop()
	}
}

// stopManager stops OPA's plugins and manager, waiting no longer than ctx:
// a plugin that does not return in time is left behind, not waited for.
func (e *Engine) stopManager(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.manager.Stop(ctx)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		e.log.Error("OPA's plugins did not stop in time; abandoning them", "error", ctx.Err())
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
