package admin

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBadInputAnswersOPAErrors(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	big := strings.Repeat("x", maxBody+1)
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"wrong method on health", "POST", "/health", "", 405, "invalid_operation"},
		{"wrong method on attempts", "PUT", "/v1/attempts", "{}", 405, "invalid_operation"},
		{"wrong method on an attempt", "PATCH", "/v1/attempts/x", "{}", 405, "invalid_operation"},
		{"wrong method on policies", "PATCH", "/v1/policies/x", "", 405, "invalid_operation"},
		{"wrong method on the stream", "POST", "/v1/decisions/stream", "", 405, "invalid_operation"},
		{"unknown route", "GET", "/v1/query", "", 404, "resource_not_found"},
		{"oversized attempt", "POST", "/v1/attempts", `{"id": "` + big + `"}`, 413, "invalid_parameter"},
		// OPA's routes answer as OPA's server.decoding limit does.
		{"oversized data", "PUT", "/v1/data/regate/x", `"` + big + `"`, 400, "invalid_parameter"},
		{"oversized policy", "PUT", "/v1/policies/x", strings.Repeat("#", maxPolicyBody+1), 400, "invalid_parameter"},
		{"malformed data", "PUT", "/v1/data/regate/x", `{"a":`, 400, "invalid_parameter"},
		{"malformed patch", "PATCH", "/v1/data/regate", `{"op": "add"}`, 400, "invalid_parameter"},
		{"missing data", "GET", "/v1/data/nope?input=%7B", "", 400, "invalid_parameter"},
		{"unknown attempt", "DELETE", "/v1/attempts/nope", "", 404, "resource_not_found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := f.unix.do(t, tc.method, tc.path, tc.body)
			if a.status != tc.status || a.errorCode() != tc.code {
				t.Errorf("%d %s, want %d with code %s", a.status, a.body, tc.status, tc.code)
			}
		})
	}
	// Nothing was written.
	f.unix.do(t, "GET", "/v1/data/regate/x", "").want(t, 200)
	if a := f.unix.do(t, "GET", "/v1/data/regate/x", ""); strings.Contains(a.body, "result") {
		t.Errorf("data written by a refused request: %s", a.body)
	}
}

func TestChunkedOversizedBody(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	body := bytes.NewReader(append([]byte(`{"id": "`), bytes.Repeat([]byte("x"), maxBody+10)...))
	req, _ := http.NewRequest("POST", "http://admin/v1/attempts", struct{ *bytes.Reader }{body}) // unknown length: chunked
	resp, err := f.unix.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", resp.StatusCode)
	}
}

func TestPanicIs500(t *testing.T) {
	s := &Server{log: testLogger()}
	s.m, _ = newMetrics(nil, nil)
	h := s.instrument(s.recoverer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") })))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(context.Background(), "GET", "/x", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"internal_error"`) {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
}
