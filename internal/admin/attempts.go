package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/server/types"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/childenv"
)

// Limits on what one attempt may register.
const (
	maxIDLen    = 128
	maxLabels   = 64
	maxLabelLen = 256
	maxPatterns = 4096
)

// attemptRequest is the body of POST /v1/attempts.
type attemptRequest struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels"`
	Allow  []string          `json:"allow"`
	Deny   []string          `json:"deny"`
	TTL    ttl               `json:"ttl"`
	// Audit is report-only mode for this attempt: the policy's denies
	// are allowed and logged as audit ("would deny").
	Audit bool `json:"audit"`
	// Listeners asks for an HTTP and a SOCKS5 listener of the attempt's
	// own, for clients that send no proxy credentials.
	Listeners bool `json:"listeners"`
	// Secrets names the secrets kept outside the sandbox whose
	// placeholders the attempt's child gets (in env).
	Secrets []string `json:"secrets"`
}

// AttemptSecrets hands attempts placeholders for the secrets regate holds
// (README, "Keeping secrets out of the sandbox").
type AttemptSecrets interface {
	// Grant gives attempt id placeholders of its own for the named
	// secrets and returns the variables that carry them.
	Grant(id string, names []string) (map[string]string, error)
	// Revoke makes id's placeholders worthless.
	Revoke(id string)
}

// ttl is a duration given as a Go duration string ("30m") or seconds.
type ttl time.Duration

func (t *ttl) UnmarshalJSON(b []byte) error {
	var secs float64
	if err := json.Unmarshal(b, &secs); err == nil {
		*t = ttl(secs * float64(time.Second))
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return errors.New(`ttl: want a duration such as "30m" or a number of seconds`)
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("ttl: %w", err)
	}
	*t = ttl(d)
	return nil
}

// attemptView is an attempt as the API shows it: never its token, except
// in the answer to its creation.
type attemptView struct {
	ID      string            `json:"id"`
	Token   string            `json:"token,omitempty"`
	Labels  map[string]string `json:"labels"`
	Allow   []string          `json:"allow"`
	Deny    []string          `json:"deny"`
	Audit   bool              `json:"audit"`
	Created time.Time         `json:"created"`
	Expires *time.Time        `json:"expires,omitempty"`
	// Listeners are the attempt's own listeners, by kind ("http",
	// "socks5"); absent when it has none.
	Listeners map[string]string `json:"listeners,omitempty"`
	// Secrets are the names of the secrets the attempt holds
	// placeholders for; absent when none.
	Secrets []string          `json:"secrets,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
}

func viewOf(a attempt.Attempt) attemptView {
	v := attemptView{ID: a.ID, Labels: a.Labels, Allow: a.Allow, Deny: a.Deny, Audit: a.Audit, Created: a.Created, Secrets: a.Secrets}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if v.Allow == nil {
		v.Allow = []string{}
	}
	if v.Deny == nil {
		v.Deny = []string{}
	}
	if !a.Expires.IsZero() {
		v.Expires = &a.Expires
	}
	return v
}

// createAttempt registers an attempt and returns its id, its token (this
// once) and the environment a child needs to use the proxy as it.
func (s *Server) createAttempt(w http.ResponseWriter, r *http.Request) {
	if s.cfg.BoundAttempt != "" {
		writeError(w, http.StatusConflict, types.CodeInvalidOperation, "regate run serves one attempt; register attempts with regate serve")
		return
	}
	var req attemptRequest
	if !decodeJSON(w, r, &req) {
		return
	}
	a, err := req.attempt(time.Now())
	if err == nil && req.Listeners && s.cfg.AttemptListeners == nil {
		err = errors.New("listeners: this regate opens no listeners for attempts")
	}
	if err == nil && len(a.Secrets) > 0 && s.cfg.Secrets == nil {
		err = errors.New("secrets: this regate holds no secrets (configure secrets: entries, or --secret)")
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, types.CodeInvalidParameter, "%v", err)
		return
	}
	s.attemptsMu.Lock()
	defer s.attemptsMu.Unlock()
	if err := s.cfg.Attempts.Add(a); err != nil {
		if errors.Is(err, attempt.ErrDuplicate) {
			writeError(w, http.StatusConflict, types.CodeResourceConflict, "attempt %q is already registered", a.ID)
			return
		}
		writeError(w, http.StatusInternalServerError, types.CodeInternal, "%v", err)
		return
	}
	proxies := s.cfg.ChildProxies
	if req.Listeners {
		own, err := s.cfg.AttemptListeners.Open(a)
		if err != nil {
			s.cfg.Attempts.Remove(a.ID) // nothing half-applied
			if errors.Is(err, ErrListenerLimit) {
				writeError(w, http.StatusTooManyRequests, types.CodeInvalidOperation, "%v", err)
				return
			}
			writeError(w, http.StatusInternalServerError, types.CodeInternal, "opening the attempt's listeners: %v", err)
			return
		}
		proxies = own
	}
	var placeholders map[string]string
	if len(a.Secrets) > 0 {
		if placeholders, err = s.cfg.Secrets.Grant(a.ID, a.Secrets); err != nil {
			s.cfg.Attempts.Remove(a.ID) // nothing half-applied
			s.release(a.ID)
			writeError(w, http.StatusBadRequest, types.CodeInvalidParameter, "%v", err)
			return
		}
	}
	v := viewOf(a)
	v.Token = a.Token
	v.Listeners = listenerNames(s.attemptListeners(a.ID))
	v.Env = envMap(childenv.Merge(childenv.Env(proxies, a.ID, a.Token, s.cfg.Self), s.cfg.ChildTrust))
	maps.Copy(v.Env, placeholders)
	w.Header().Set("Location", "/v1/attempts/"+a.ID)
	writeJSON(w, http.StatusCreated, result{v})
}

// attempt validates the request into an attempt with a fresh token.
func (req *attemptRequest) attempt(now time.Time) (attempt.Attempt, error) {
	var errs []error
	if req.ID == "" {
		req.ID = attempt.NewID()
	} else if err := validID(req.ID); err != nil {
		errs = append(errs, err)
	}
	if len(req.Labels) > maxLabels {
		errs = append(errs, fmt.Errorf("labels: more than %d", maxLabels))
	}
	for k, v := range req.Labels {
		if k == "" || len(k) > maxLabelLen || len(v) > maxLabelLen {
			errs = append(errs, fmt.Errorf("labels: %q: keys must be 1-%d bytes, values at most %d", k, maxLabelLen, maxLabelLen))
		}
	}
	errs = append(errs, patterns("allow", req.Allow), patterns("deny", req.Deny))
	if slices.Contains(req.Deny, "*") {
		errs = append(errs, errors.New(`deny: "*" is for allow lists only`))
	}
	if req.TTL < 0 {
		errs = append(errs, errors.New("ttl: must not be negative"))
	}
	if len(req.Secrets) > maxLabels {
		errs = append(errs, fmt.Errorf("secrets: more than %d", maxLabels))
	}
	for _, n := range req.Secrets {
		if n == "" || len(n) > maxLabelLen {
			errs = append(errs, fmt.Errorf("secrets: %q: names must be 1-%d bytes", n, maxLabelLen))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return attempt.Attempt{}, err
	}
	slices.Sort(req.Secrets)
	a := attempt.Attempt{ID: req.ID, Token: attempt.NewToken(), Labels: req.Labels, Allow: req.Allow, Deny: req.Deny,
		Audit: req.Audit, Secrets: slices.Compact(req.Secrets), Created: now}
	if req.TTL > 0 {
		a.Expires = now.Add(time.Duration(req.TTL))
	}
	return a, nil
}

// validID accepts ids that are safe as a proxy user name and a URL path
// segment: 1-128 of letters, digits, '.', '_', '-' and '~'.
func validID(id string) error {
	if len(id) > maxIDLen {
		return fmt.Errorf("id: longer than %d bytes", maxIDLen)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-~", c)) {
			return fmt.Errorf("id %q: only letters, digits, '.', '_', '-' and '~' are allowed", id)
		}
	}
	return nil
}

func patterns(field string, ps []string) error {
	if len(ps) > maxPatterns {
		return fmt.Errorf("%s: more than %d patterns", field, maxPatterns)
	}
	var errs []error
	for i, p := range ps {
		if err := engine.ValidatePattern(p); err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", field, i, err))
		}
	}
	return errors.Join(errs...)
}

func envMap(env []string) map[string]string {
	out := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

func (s *Server) listAttempts(w http.ResponseWriter, _ *http.Request) {
	list := s.cfg.Attempts.List()
	out := make([]attemptView, len(list))
	for i, a := range list {
		out[i] = viewOf(a)
		out[i].Listeners = listenerNames(s.attemptListeners(a.ID))
	}
	writeJSON(w, http.StatusOK, result{out})
}

func (s *Server) getAttempt(w http.ResponseWriter, r *http.Request) {
	a, ok := s.cfg.Attempts.Get(r.PathValue("id"))
	if !ok {
		writeError(w, http.StatusNotFound, types.CodeResourceNotFound, "attempt %q is not registered", r.PathValue("id"))
		return
	}
	v := viewOf(a)
	v.Listeners = listenerNames(s.attemptListeners(a.ID))
	writeJSON(w, http.StatusOK, result{v})
}

// deleteAttempt removes an attempt: its credentials get 407 from then on
// (connections already open on the shared listeners are not cut); its own
// listeners close, and every connection they accepted with them.
func (s *Server) deleteAttempt(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if s.cfg.BoundAttempt != "" && id == s.cfg.BoundAttempt {
		writeError(w, http.StatusConflict, types.CodeInvalidOperation, "attempt %q is the one regate run serves", id)
		return
	}
	s.attemptsMu.Lock()
	removed := s.cfg.Attempts.Remove(id)
	s.release(id)
	s.attemptsMu.Unlock()
	if !removed {
		writeError(w, http.StatusNotFound, types.CodeResourceNotFound, "attempt %q is not registered", id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// attemptListeners are the listeners of attempt id (nil: none).
func (s *Server) attemptListeners(id string) []childenv.Listener {
	if s.cfg.AttemptListeners == nil {
		return nil
	}
	return s.cfg.AttemptListeners.Listeners(id)
}

// release frees what attempt id held besides its registration: its own
// listeners close, its placeholders become worthless.
func (s *Server) release(id string) {
	if s.cfg.AttemptListeners != nil {
		s.cfg.AttemptListeners.Close(id)
	}
	if s.cfg.Secrets != nil {
		s.cfg.Secrets.Revoke(id)
	}
}
