package admin

import (
	"net/http"

	"github.com/open-policy-agent/opa/v1/server/types"
)

// handler is the whole admin API: instrumentation outermost, then panic
// recovery, authentication and the routes.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	small := func(h http.HandlerFunc) http.Handler { return limitBody(maxBody, h) }

	mux.Handle("GET /health", small(s.health))
	mux.Handle("GET /v1/status", small(s.status))
	mux.Handle("GET /metrics", small(s.metricsHandler().ServeHTTP))

	policies := limitBody(maxPolicyBody, http.HandlerFunc(s.serveOPA))
	mux.Handle("GET /v1/policies", policies)
	data := small(s.serveOPA)
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		mux.Handle(m+" /v1/policies/{path...}", policies)
	}
	for _, m := range []string{"GET", "PUT", "PATCH", "DELETE", "POST"} {
		mux.Handle(m+" /v1/data", data)
		mux.Handle(m+" /v1/data/{path...}", data)
	}

	mux.Handle("POST /v1/attempts", small(s.createAttempt))
	mux.Handle("GET /v1/attempts", small(s.listAttempts))
	mux.Handle("GET /v1/attempts/{id}", small(s.getAttempt))
	mux.Handle("DELETE /v1/attempts/{id}", small(s.deleteAttempt))

	mux.Handle("GET /v1/decisions", small(s.listDecisions))
	mux.Handle("GET /v1/decisions/stream", small(s.streamDecisions))

	for path, allow := range map[string]string{
		"/health":                "GET, HEAD",
		"/v1/status":             "GET, HEAD",
		"/metrics":               "GET, HEAD",
		"/v1/policies":           "GET, HEAD",
		"/v1/policies/{path...}": "GET, HEAD, PUT, DELETE",
		"/v1/data":               "GET, HEAD, PUT, PATCH, DELETE, POST",
		"/v1/data/{path...}":     "GET, HEAD, PUT, PATCH, DELETE, POST",
		"/v1/attempts":           "GET, HEAD, POST",
		"/v1/attempts/{id}":      "GET, HEAD, DELETE",
		"/v1/decisions":          "GET, HEAD",
		"/v1/decisions/stream":   "GET",
	} {
		mux.Handle(path, methodNotAllowed(allow))
	}
	mux.HandleFunc("/", notFound)
	return s.instrument(s.recoverer(s.authenticate(mux)))
}

// serveOPA hands /v1/policies and /v1/data to OPA's own REST server: its
// bundle-root ownership checks, compile errors, JSON Patch and error JSON.
func (s *Server) serveOPA(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	opa := s.opa
	s.mu.Unlock()
	if opa == nil {
		writeError(w, http.StatusServiceUnavailable, types.CodeInternal, "the admin API is starting")
		return
	}
	opa.Handler.ServeHTTP(w, r)
}
