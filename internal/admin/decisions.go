package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/open-policy-agent/opa/v1/server/types"

	"github.com/regate/regate/engine"
)

// Decision query limits.
const (
	defaultLimit  = 100
	maxLimit      = 100_000
	streamBuffer  = 256
	streamTimeout = 10 * time.Second // per event written to a stream
)

// eventFilter is the filter of GET /v1/decisions and its stream.
type eventFilter struct {
	allow     *bool
	audit     *bool
	attemptID *string // "" selects anonymous clients
	host      string
	since     time.Time
	limit     int
	limited   bool // limit was given
}

// parseFilter reads allow=true|false, audit=true|false (an allow of audit
// mode: what the policy would have denied), attempt_id, host, since (RFC
// 3339) and limit.
func parseFilter(q url.Values) (eventFilter, error) {
	f := eventFilter{limit: defaultLimit}
	for k := range q {
		switch k {
		case "allow", "audit", "attempt_id", "host", "since", "limit":
		default:
			return f, fmt.Errorf("unknown parameter %q (want allow, audit, attempt_id, host, since, limit)", k)
		}
	}
	if v := q.Get("allow"); q.Has("allow") {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, fmt.Errorf("allow: %q is not true or false", v)
		}
		f.allow = &b
	}
	if v := q.Get("audit"); q.Has("audit") {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return f, fmt.Errorf("audit: %q is not true or false", v)
		}
		f.audit = &b
	}
	if q.Has("attempt_id") {
		id := q.Get("attempt_id")
		f.attemptID = &id
	}
	if v := q.Get("host"); v != "" {
		h, _, err := engine.NormalizeHost(v)
		if err != nil {
			return f, fmt.Errorf("host: %w", err)
		}
		f.host = h
	}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return f, fmt.Errorf("since: %q is not an RFC 3339 time", v)
		}
		f.since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxLimit {
			return f, fmt.Errorf("limit: %q is not 1-%d", v, maxLimit)
		}
		f.limit, f.limited = n, true
	}
	return f, nil
}

func (f *eventFilter) match(ev *engine.Event) bool {
	switch {
	case f.allow != nil && (ev.Query || ev.Allow != *f.allow):
		// An evaluation of OPA's REST API allowed and denied nothing.
		return false
	case f.audit != nil && (ev.Query || ev.Audit != *f.audit):
		return false
	case f.attemptID != nil && (ev.Query || ev.AttemptID != *f.attemptID):
		return false
	case f.host != "" && ev.Host != f.host:
		return false
	case !f.since.IsZero() && ev.Timestamp.Before(f.since):
		return false
	}
	return true
}

// listDecisions answers the most recent decision-log events that pass the
// filter, oldest first, as {"result": [event, …]}.
func (s *Server) listDecisions(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, types.CodeInvalidParameter, "%v", err)
		return
	}
	events := s.cfg.Engine.Recent(f.match, f.limit)
	if events == nil {
		events = []*engine.Event{}
	}
	writeJSON(w, http.StatusOK, result{events})
}

// streamDecisions writes live decision-log events that pass the filter as
// newline-delimited JSON, one flush per event, until the client leaves or
// the server shuts down, or limit events (when given) were sent. A client
// that reads too slowly is dropped (its stream ends) rather than slowing
// decisions.
func (s *Server) streamDecisions(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, types.CodeInvalidParameter, "%v", err)
		return
	}
	events, cancel := s.cfg.Engine.Subscribe(streamBuffer, f.match)
	defer cancel()
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil || r.Method == http.MethodHead {
		return
	}
	// The server's ReadTimeout bounds reading a request, not a stream's life.
	_ = rc.SetReadDeadline(time.Time{})
	// Shutdown also cuts, within a second, a write stuck on a client that
	// stopped reading; a reading client sees the stream end cleanly.
	defer context.AfterFunc(s.ctx, func() { _ = rc.SetWriteDeadline(time.Now().Add(time.Second)) })()
	enc := json.NewEncoder(w)
	for sent := 0; !f.limited || sent < f.limit; sent++ {
		select {
		case ev, ok := <-events:
			if !ok {
				return // dropped for falling behind
			}
			_ = rc.SetWriteDeadline(time.Now().Add(streamTimeout))
			if enc.Encode(ev) != nil || rc.Flush() != nil {
				return
			}
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
}
