package engine

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/prometheus/client_golang/prometheus"
)

// remoteListener names regate's listener on OPA's bundle plugin.
const remoteListener = "regate"

// remote follows OPA's bundle plugin. OPA marks the plugin OK once every
// remote bundle has activated and never reports a later failure in the
// plugin's state; remote does, so that a bundle that fails to download,
// verify, parse or compile shows in Ready, in Status().Plugins["bundle"] and
// in the status OPA reports to a control plane, while the last good revision
// keeps deciding. It also counts every download attempt and keeps the
// revision gauge current.
type remote struct {
	e      *Engine
	loads  *prometheus.CounterVec
	mu     sync.Mutex
	last   map[string]time.Time // last request seen, per bundle
	failed map[string]string    // current failure message, per bundle
	state  *plugins.Status      // last plugin state remote set
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
	bp.RegisterBulkListener(remoteListener, r.update)
}

// update runs after every download attempt of any bundle, with a copy of
// every bundle's status, inside the bundle plugin's lock.
func (r *remote) update(all map[string]*bundle.Status) {
	r.mu.Lock()
	defer r.mu.Unlock()
	activated := true
	for _, name := range slices.Sorted(maps.Keys(all)) {
		s := all[name]
		if s.LastSuccessfulActivation.IsZero() {
			activated = false
		}
		if s.LastRequest.Equal(r.last[name]) {
			continue
		}
		r.last[name] = s.LastRequest
		r.count(name, s)
	}
	r.e.updateRevisionMetric()
	r.setState(activated)
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

// setState reports the bundle plugin's state: ERROR while a bundle's last
// attempt failed, else OK once all have activated, else NOT_READY (OPA's
// own rule).
func (r *remote) setState(activated bool) {
	st := &plugins.Status{State: plugins.StateOK}
	switch {
	case len(r.failed) > 0:
		var msgs []string
		for _, name := range slices.Sorted(maps.Keys(r.failed)) {
			msgs = append(msgs, fmt.Sprintf("bundle %s: %s", name, r.failed[name]))
		}
		st = &plugins.Status{State: plugins.StateErr, Message: strings.Join(msgs, "; ")}
	case !activated:
		st = &plugins.Status{State: plugins.StateNotReady}
	}
	if r.state != nil && *r.state == *st {
		return
	}
	r.state = st
	r.e.manager.UpdatePluginStatus(bundle.Name, st)
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
