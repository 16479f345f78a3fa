package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/open-policy-agent/opa/v1/server/types"
	"github.com/open-policy-agent/opa/v1/server/writer"
)

// Body limits: policies are Rego text and may be large; everything else is
// small JSON.
const (
	maxBody       = 1 << 20
	maxPolicyBody = 4 << 20
)

// writeError writes an OPA error response: {"code": …, "message": …}.
func writeError(w http.ResponseWriter, status int, code, format string, args ...any) {
	writer.Error(w, status, types.NewErrorV1(code, format, args...))
}

// writeJSON writes v as the JSON body of a status response.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, types.CodeInternal, "encoding response: %v", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// result is the envelope of every regate-specific answer, as OPA's.
type result struct {
	Result any `json:"result"`
}

// decodeJSON decodes the request body into v strictly: one JSON value, no
// unknown fields, within the route's limit. On error it has answered.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.Decode(new(json.RawMessage)) != io.EOF {
		err = errors.New("unexpected data after the JSON value")
	}
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		writeError(w, http.StatusRequestEntityTooLarge, types.CodeInvalidParameter, "request body exceeds %d bytes", tooBig.Limit)
		return false
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("empty body")
	}
	writeError(w, http.StatusBadRequest, types.CodeInvalidParameter, "decoding request body: %v", err)
	return false
}

// limitBody refuses a declared length above n with 413 and caps what the
// handler can read at n.
func limitBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			writeError(w, http.StatusRequestEntityTooLarge, types.CodeInvalidParameter, "request body exceeds %d bytes", n)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, n)
		next.ServeHTTP(w, r)
	})
}

// methodNotAllowed answers a known path asked with a wrong method.
func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, http.StatusMethodNotAllowed, types.CodeInvalidOperation, "method %s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, allow)
	})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, types.CodeResourceNotFound, "no route %s", r.URL.Path)
}

// recoverer turns a handler panic into a 500 (when nothing was written
// yet) and a log line, never a dead process.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error("admin handler panicked", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v))
			if sw, ok := w.(*statusWriter); !ok || sw.status == 0 {
				writeError(w, http.StatusInternalServerError, types.CodeInternal, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}
