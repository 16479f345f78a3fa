package admin

import (
	"net/http"

	"github.com/open-policy-agent/opa/v1/logging"
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

	policies := s.opaRoute(maxPolicyBody)
	mux.Handle("GET /v1/policies", policies)
	data := s.opaRoute(maxBody)
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

// opaRoute hands /v1/policies and /v1/data to OPA's own REST server: its
// bundle-root ownership checks, compile errors, JSON Patch, error JSON and
// decision logging. Bodies are limited as OPA limits them (400 above the
// limit): by opa.server.decoding when configured, else by def.
func (s *Server) opaRoute(def int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		opa, limits := s.opa, s.limits
		s.mu.Unlock()
		if opa == nil {
			writeError(w, http.StatusServiceUnavailable, types.CodeInternal, "the admin API is starting")
			return
		}
		// What OPA's runtime puts in the context of every request: the
		// decision log's requested_by and req_id.
		ctx := logging.NewContext(r.Context(), &logging.RequestContext{
			ClientAddr: r.RemoteAddr, ReqID: s.reqID.Add(1), ReqPath: r.URL.EscapedPath(), ReqMethod: r.Method,
		})
		limits.handler(def, opa.Handler).ServeHTTP(w, r.WithContext(ctx))
	})
}
