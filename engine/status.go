package engine

import (
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/status"
)

// Status is what the engine reports about its policy (for /health,
// /v1/status and `regate check`).
type Status struct {
	// Loaded is true once a policy has been compiled and is deciding.
	Loaded bool `json:"loaded"`
	// Audit is report-only mode for every decision (Config.Audit).
	Audit bool `json:"audit"`
	// Bundles maps each active bundle to its revision.
	Bundles map[string]string `json:"bundles"`
	// Modules are the ids of the local plain modules (not bundles).
	Modules []string `json:"modules"`
	// LastReload is the time of the last successful local reload.
	LastReload time.Time `json:"last_reload"`
	// LastError is the last reload error, "" after a success.
	LastError string `json:"last_error,omitempty"`
	// LastErrorAt is when LastError happened.
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// Reloads and ReloadFailures count local reloads.
	Reloads        int `json:"reloads"`
	ReloadFailures int `json:"reload_failures"`
	// Plugins is OPA's plugin status (bundle, decision_logs, status, …).
	Plugins map[string]*plugins.Status `json:"plugins,omitempty"`
	// BundleFailures names each remote bundle whose last download failed
	// (server down, bundle refused) and why, while its last good revision
	// keeps deciding; OPA's plugin states stay OK meanwhile.
	BundleFailures map[string]string `json:"bundle_failures,omitempty"`
}

type statusBox struct {
	mu      sync.Mutex
	revMu   sync.Mutex // serialises updateRevisionMetric
	s       Status
	modules []string
	paths   []string
}

func (b *statusBox) reloaded() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s.LastReload = time.Now()
	b.s.LastError = ""
	b.s.Reloads++
}

func (b *statusBox) reloadFailed(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.s.LastError = err.Error()
	b.s.LastErrorAt = time.Now()
	b.s.ReloadFailures++
}

func (b *statusBox) setLocal(modules, paths []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.modules, b.paths = modules, paths
}

func (b *statusBox) local() (modules, paths []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.modules, b.paths
}

// Status reports the engine's current state.
func (e *Engine) Status() Status {
	e.status.mu.Lock()
	s := e.status.s
	s.Modules = slices.Clone(e.status.modules)
	if e.manager != nil {
		// A remote bundle that owns a root may have erased some of them.
		mods := e.manager.GetCompiler().Modules
		s.Modules = slices.DeleteFunc(s.Modules, func(id string) bool { _, ok := mods[id]; return !ok })
	}
	e.status.mu.Unlock()
	q := e.query.Load()
	s.Loaded = q != nil && q.decides
	s.Audit = e.cfg.Audit
	s.Bundles = map[string]string{}
	if q != nil {
		for name, b := range q.bundles {
			s.Bundles[name] = b.Revision
		}
	}
	if e.manager != nil {
		s.Plugins = e.manager.PluginStatus()
	}
	if r := e.rem.Load(); r != nil {
		if f := r.failures(); len(f) > 0 {
			s.BundleFailures = f
		}
	}
	return s
}

// OPAStatus is OPA's status report, as OPA's status plugin would send it
// and as `opa run --server` answers GET /v1/status: the status plugin's own
// snapshot when one is configured; otherwise the same report built from
// the same sources (labels, the bundle plugin's statuses, plugin states,
// metrics).
func (e *Engine) OPAStatus() *status.UpdateRequestV1 {
	if e.manager == nil {
		return &status.UpdateRequestV1{}
	}
	if p := status.Lookup(e.manager); p != nil {
		return p.Snapshot()
	}
	s := &status.UpdateRequestV1{Labels: e.manager.Labels(), Plugins: e.manager.PluginStatus()}
	if r := e.rem.Load(); r != nil {
		if b := r.statuses(); len(b) > 0 {
			s.Bundles = b
		}
	}
	if m := e.opaMetrics(); m != nil {
		s.Metrics = map[string]any{m.Info().Name: m.All()}
	}
	return s
}

// Ready is nil when a policy is deciding and every OPA plugin is OK, as
// OPA's /health?plugins judges: once a remote bundle has activated, its
// plugin stays OK while the last good revision decides (Fresh says whether
// the last download failed); otherwise it says what is missing.
func (e *Engine) Ready() error {
	if q := e.query.Load(); q == nil || !q.decides {
		return errors.New(ReasonNoPolicy)
	}
	if e.manager == nil {
		return nil
	}
	st := e.manager.PluginStatus()
	for _, name := range slices.Sorted(maps.Keys(st)) {
		if s := st[name]; s != nil && s.State != plugins.StateOK {
			msg := name + " plugin is " + string(s.State)
			if s.Message != "" {
				msg += ": " + s.Message
			}
			return errors.New(msg)
		}
	}
	return nil
}

// updateRevisionMetric sets the revision gauge from the policy deciding now;
// local reloads and remote bundle activations (remote.go) both call it.
func (e *Engine) updateRevisionMetric() {
	e.status.revMu.Lock()
	defer e.status.revMu.Unlock()
	e.metrics.revision.Reset()
	if q := e.query.Load(); q != nil {
		for name, b := range q.bundles {
			e.metrics.revision.WithLabelValues(name, b.Revision).Set(1)
		}
	}
}
