package engine

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/prometheus/client_golang/prometheus"
)

// remoteListener names regate's listener on OPA's bundle plugin.
const remoteListener = "regate"

// remote follows OPA's bundle plugin without changing what OPA reports.
// OPA marks the plugin OK once every remote bundle has activated and keeps
// it OK while the last good revision decides, whatever later downloads do
// (so /health?bundles, /health?plugins and the status report stay green
// through a bundle-server outage, as OPA's do). remote keeps the "last
// download failed" signal for regate's own surfaces instead: Fresh, the
// regate part of /v1/status, regate_bundle_loads_total{result="failed"}
// and one log line per distinct failure. It also keeps the revision gauge
// current and the latest bundle statuses for OPA's status shape.
type remote struct {
	e      *Engine
	loads  *prometheus.CounterVec
	mu     sync.Mutex
	last   map[string]time.Time      // last request seen, per bundle
	failed map[string]string         // current failure message, per bundle
	latest map[string]*bundle.Status // OPA's statuses, as last reported
}

// watchRemote registers remote on the bundle plugin that OPA's discovery
// created from the configuration; without remote bundles it does nothing.
func (e *Engine) watchRemote() {
	bp := bundle.Lookup(e.manager)
	if bp == nil {
		return
	}
	r := &remote{e: e, last: map[string]time.Time{}, failed: map[string]string{},
		loads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regate_bundle_loads_total",
			Help: "Remote bundle download attempts by bundle and result (activated, not_modified, failed).",
		}, []string{"bundle", "result"}),
	}
	if reg := e.cfg.Registerer; reg != nil {
		if err := reg.Register(r.loads); err != nil {
			e.log.Warn("registering remote bundle metrics", "error", err)
		}
	}
	e.rem.Store(r)
	bp.RegisterBulkListener(remoteListener, r.update)
}

// update runs after every download attempt of any bundle, with a copy of
// every bundle's status, inside the bundle plugin's lock.
func (r *remote) update(all map[string]*bundle.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latest = all
	for _, name := range slices.Sorted(maps.Keys(all)) {
		s := all[name]
		if s.LastRequest.Equal(r.last[name]) {
			continue
		}
		r.last[name] = s.LastRequest
		r.count(name, s)
	}
	r.e.updateRevisionMetric()
}

// count records one download attempt of bundle name and logs a failure or
// a recovery once, when it starts or changes.
func (r *remote) count(name string, s *bundle.Status) {
	msg := failure(s)
	switch {
	case msg != "":
		r.loads.WithLabelValues(name, "failed").Inc()
		if r.failed[name] != msg {
			r.e.log.Error("remote bundle refused; the last good revision keeps deciding",
				"bundle", name, "revision", s.ActiveRevision, "error", msg)
		}
		r.failed[name] = msg
		return
	case s.LastSuccessfulActivation.After(s.LastRequest) || s.LastSuccessfulActivation.Equal(s.LastRequest):
		r.loads.WithLabelValues(name, "activated").Inc()
	default:
		r.loads.WithLabelValues(name, "not_modified").Inc()
	}
	if _, ok := r.failed[name]; ok {
		r.e.log.Info("remote bundle recovered", "bundle", name, "revision", s.ActiveRevision)
		delete(r.failed, name)
	}
}

// failures is the failure message of each bundle whose last download
// failed.
func (r *remote) failures() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.failed)
}

// statuses is a copy of OPA's latest status of every remote bundle.
func (r *remote) statuses() map[string]*bundle.Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]*bundle.Status, len(r.latest))
	for name, s := range r.latest {
		c := *s
		out[name] = &c
	}
	return out
}

// failure is the status's error message, with the compiler's errors, or ""
// when the last attempt succeeded.
func failure(s *bundle.Status) string {
	if s.Code == "" && s.Message == "" && len(s.Errors) == 0 {
		return ""
	}
	msg := s.Message
	for _, err := range s.Errors {
		msg += "; " + err.Error()
	}
	return msg
}

// Fresh is nil unless the last download of a remote bundle failed (the
// server was down, the bundle was refused); then it names each such bundle
// and why. OPA's own health and status stay OK meanwhile: the last good
// revision decides. regate's /health?fresh and /v1/status use it.
func (e *Engine) Fresh() error {
	r := e.rem.Load()
	if r == nil {
		return nil
	}
	failed := r.failures()
	if len(failed) == 0 {
		return nil
	}
	var msgs []string
	for _, name := range slices.Sorted(maps.Keys(failed)) {
		msgs = append(msgs, fmt.Sprintf("bundle %s: last download failed: %s", name, failed[name]))
	}
	return fmt.Errorf("%s", strings.Join(msgs, "; "))
}
