package admin

import (
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
// plugin to be OK (less those named by ?exclude-plugin).
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

// statusReport is the result of GET /v1/status.
type statusReport struct {
	Version       string             `json:"version,omitempty"`
	Started       time.Time          `json:"started"`
	UptimeSeconds float64            `json:"uptime_seconds"`
	Healthy       bool               `json:"healthy"`
	Health        string             `json:"health_error,omitempty"`
	Listeners     map[string]string  `json:"listeners"`
	Policy        engine.Status      `json:"policy"`
	Decisions     map[string]float64 `json:"decisions"`
	Attempts      int                `json:"attempts"`
}

// status reports listeners, bundles and revisions, the last reload and its
// error, decision counters, the number of attempts and the uptime.
func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	started := s.started
	admin := slices.Clone(s.addrs)
	s.mu.Unlock()
	rep := statusReport{
		Version:       s.cfg.Version,
		Started:       started,
		UptimeSeconds: time.Since(started).Seconds(),
		Listeners:     map[string]string{},
		Policy:        s.cfg.Engine.Status(),
		Decisions:     s.decisionCounts(),
		Attempts:      s.cfg.Attempts.Len(),
	}
	if err := s.healthy(&url.URL{}); err != nil {
		rep.Health = err.Error()
	} else {
		rep.Healthy = true
	}
	for name, addr := range s.cfg.Listeners {
		rep.Listeners[name] = addr
	}
	if len(admin) > 0 {
		rep.Listeners["admin"] = strings.Join(admin, ",")
	}
	writeJSON(w, http.StatusOK, result{rep})
}
