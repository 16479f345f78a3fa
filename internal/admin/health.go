package admin

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/server/types"

	"github.com/regate/regate/engine"
)

// health answers as OPA's /health: 200 {} when a policy decides and the
// proxy listeners serve, 500 {"error": …} otherwise. ?bundles also
// requires every configured bundle to be activated, ?plugins every OPA
// plugin to be OK (less those named by ?exclude-plugin): once activated, a
// bundle stays OK while its last good revision decides, as in OPA.
// regate's own ?fresh also requires the last download of every remote
// bundle to have succeeded.
func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	if err := s.healthy(r.URL); err != nil {
		writeJSON(w, http.StatusInternalServerError, types.HealthResponseV1{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, types.HealthResponseV1{})
}

func (s *Server) healthy(u *url.URL) error {
	st := s.cfg.Engine.Status()
	if !st.Loaded {
		return errors.New(engine.ReasonNoPolicy)
	}
	if s.isDone() {
		return errors.New("shutting down")
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(); err != nil {
			return err
		}
	}
	q := u.Query()
	if boolParam(q, types.ParamBundlesActivationV1) || boolParam(q, types.ParamBundleActivationV1) { //nolint:staticcheck // OPA still accepts ?bundle
		for _, name := range []string{"discovery", "bundle"} {
			if p := st.Plugins[name]; p != nil && p.State != plugins.StateOK {
				return errors.New("one or more bundles are not activated")
			}
		}
	}
	if boolParam(q, types.ParamPluginsV1) {
		excluded := q[types.ParamExcludePluginV1]
		for _, name := range slices.Sorted(maps.Keys(st.Plugins)) {
			if p := st.Plugins[name]; p != nil && p.State != plugins.StateOK && !slices.Contains(excluded, name) {
				return errors.New("one or more plugins are not up")
			}
		}
	}
	if boolParam(q, ParamFresh) {
		if err := s.cfg.Engine.Fresh(); err != nil {
			return err
		}
	}
	return nil
}

// boolParam is OPA's reading of a boolean query parameter: present without
// a value, or "true".
func boolParam(q url.Values, name string) bool {
	vs, ok := q[name]
	if !ok {
		return false
	}
	if len(vs) == 1 && vs[0] == "" {
		return true
	}
	return slices.ContainsFunc(vs, func(v string) bool { return strings.EqualFold(v, "true") })
}

func (s *Server) isDone() bool { return s.ctx.Err() != nil }

// ParamFresh is regate's own /health parameter: with it, a remote bundle
// whose last download failed makes /health answer 500, although its last
// good revision decides (OPA's ?bundles and ?plugins stay 200 then).
const ParamFresh = "fresh"

// regateStatus is regate's own part of GET /v1/status, under "regate".
type regateStatus struct {
	Version       string             `json:"version,omitempty"`
	Started       time.Time          `json:"started"`
	UptimeSeconds float64            `json:"uptime_seconds"`
	Healthy       bool               `json:"healthy"`
	Health        string             `json:"health_error,omitempty"`
	Fresh         bool               `json:"fresh"`
	FreshError    string             `json:"fresh_error,omitempty"`
	Listeners     map[string]string  `json:"listeners"`
	Policy        engine.Status      `json:"policy"`
	Decisions     map[string]float64 `json:"decisions"`
	Attempts      int                `json:"attempts"`
}

// status answers OPA's status report (as `opa run --server` answers GET
// /v1/status: labels, bundles, plugins, decision_logs, metrics), with
// regate's own fields under "regate": listeners, the policy (revisions,
// local modules, reloads, the bundles whose last download failed),
// decision counters, the number of attempts and the uptime.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	started := s.started
	admin := slices.Clone(s.addrs)
	s.mu.Unlock()
	pol := s.cfg.Engine.Status()
	pol.Plugins = nil // reported once, OPA's way, at the top
	rep := regateStatus{
		Version:       s.cfg.Version,
		Started:       started,
		UptimeSeconds: time.Since(started).Seconds(),
		Listeners:     map[string]string{},
		Policy:        pol,
		Decisions:     s.decisionCounts(),
		Attempts:      s.cfg.Attempts.Len(),
	}
	if err := s.healthy(&url.URL{}); err != nil {
		rep.Health = err.Error()
	} else {
		rep.Healthy = true
	}
	if err := s.cfg.Engine.Fresh(); err != nil {
		rep.FreshError = err.Error()
	} else {
		rep.Fresh = true
	}
	for name, addr := range s.cfg.Listeners {
		rep.Listeners[name] = addr
	}
	if len(admin) > 0 {
		rep.Listeners["admin"] = strings.Join(admin, ",")
	}
	b, err := json.Marshal(s.cfg.Engine.OPAStatus())
	if err != nil {
		writeError(w, http.StatusInternalServerError, types.CodeInternal, "encoding OPA status: %v", err)
		return
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		writeError(w, http.StatusInternalServerError, types.CodeInternal, "encoding OPA status: %v", err)
		return
	}
	out["regate"] = rep
	writeJSON(w, http.StatusOK, result{out})
}
