package admin

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/regate/regate/engine"
)

// event is the part of a decision-log event the tests read.
type event struct {
	DecisionID string `json:"decision_id"`
	Path       string `json:"path"`
	Input      struct {
		Host      string `json:"host"`
		AttemptID string `json:"attempt_id"`
	} `json:"input"`
	Result struct {
		Allow bool `json:"allow"`
	} `json:"result"`
	Timestamp time.Time `json:"timestamp"`
}

func (f *fixture) decisions(t *testing.T, query string) []event {
	t.Helper()
	var got struct{ Result []event }
	f.unix.do(t, "GET", "/v1/decisions"+query, "").want(t, http.StatusOK).decode(t, &got)
	return got.Result
}

func hostsOf(evs []event) string {
	var hs []string
	for _, ev := range evs {
		hs = append(hs, ev.Input.Host)
	}
	return strings.Join(hs, ",")
}

// TestDecisionsAuditFilter: audit=true selects what audit mode let
// through (the policy would have denied it), which allow=false leaves out.
func TestDecisionsAuditFilter(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	audited := f.register(t, `{"id": "job-a", "audit": true}`)
	f.wantGet(t, "other.test", url.UserPassword("job-a", audited.Result.Token), http.StatusOK)
	f.wantGet(t, "denied.test", nil, http.StatusForbidden)
	f.engine.Flush(context.Background())
	for query, want := range map[string]string{
		"?audit=true":             "other.test",
		"?audit=false":            "denied.test",
		"?allow=false":            "denied.test",
		"?allow=true&audit=true":  "other.test",
		"?allow=false&audit=true": "",
	} {
		if got := hostsOf(f.decisions(t, query)); got != want {
			t.Errorf("%s: hosts %q, want %q", query, got, want)
		}
	}
	if a := f.unix.do(t, "GET", "/v1/decisions?audit=perhaps", "").want(t, http.StatusBadRequest); a.errorCode() != "invalid_parameter" {
		t.Errorf("audit=perhaps: %s", a.body)
	}
}

func TestDecisionsFilters(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.unix.do(t, "PUT", "/v1/data/regate/allow", `["allowed.test"]`).want(t, http.StatusNoContent)
	job := f.register(t, `{"id": "job-2"}`)
	f.wantGet(t, "allowed.test", nil, http.StatusOK)
	f.wantGet(t, "other.test", nil, http.StatusForbidden)
	f.wantGet(t, "other.test", url.UserPassword("job-2", job.Result.Token), http.StatusForbidden)
	f.engine.Flush(context.Background())

	all := f.decisions(t, "")
	if hostsOf(all) != "allowed.test,other.test,other.test" || all[0].Path != engine.DecisionPath || all[0].DecisionID == "" {
		t.Fatalf("all decisions: %+v", all)
	}
	tests := []struct{ query, hosts string }{
		{"?allow=false", "other.test,other.test"},
		{"?allow=true", "allowed.test"},
		{"?attempt_id=job-2", "other.test"},
		{"?attempt_id=", "allowed.test,other.test"},
		{"?host=ALLOWED.test.", "allowed.test"},
		{"?limit=1", "other.test"},
		{"?since=" + url.QueryEscape(all[1].Timestamp.Format(time.RFC3339Nano)), "other.test,other.test"},
		{"?since=2999-01-01T00:00:00Z", ""},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			if got := hostsOf(f.decisions(t, tc.query)); got != tc.hosts {
				t.Errorf("hosts %q, want %q", got, tc.hosts)
			}
		})
	}
	for _, bad := range []string{"?allow=maybe", "?since=yesterday", "?limit=0", "?limit=x", "?colour=red", "?host=a%20b"} {
		a := f.unix.do(t, "GET", "/v1/decisions"+bad, "").want(t, http.StatusBadRequest)
		if a.errorCode() != "invalid_parameter" {
			t.Errorf("%s: %s", bad, a.body)
		}
	}
}

// stream opens GET /v1/decisions/stream<query> and returns its lines.
func (f *fixture) stream(t *testing.T, query string) (*bufio.Reader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://admin/v1/decisions/stream"+query, nil)
	c := unixClient(f.socket, "")
	c.c.Timeout = 0
	resp, err := c.c.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		cancel()
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	return bufio.NewReader(resp.Body), func() { cancel(); _ = resp.Body.Close() }
}

func readEvent(t *testing.T, r *bufio.Reader) event {
	t.Helper()
	done := make(chan struct{})
	var line string
	var err error
	go func() { line, err = r.ReadString('\n'); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("no event on the stream within 5 s")
	}
	if err != nil {
		t.Fatalf("reading the stream: %v", err)
	}
	var ev event
	if err := json.Unmarshal([]byte(line), &ev); err != nil {
		t.Fatalf("stream line %q: %v", line, err)
	}
	return ev
}

func TestDecisionStream(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.unix.do(t, "PUT", "/v1/data/regate/allow", `["allowed.test"]`).want(t, http.StatusNoContent)
	denies, stop := f.stream(t, "?allow=false")
	defer stop()
	everything, stopAll := f.stream(t, "")
	defer stopAll()

	f.wantGet(t, "allowed.test", nil, http.StatusOK)
	f.wantGet(t, "other.test", nil, http.StatusForbidden)
	if ev := readEvent(t, denies); ev.Input.Host != "other.test" || ev.Result.Allow || ev.DecisionID == "" {
		t.Errorf("filtered stream: %+v", ev)
	}
	if a, b := readEvent(t, everything), readEvent(t, everything); a.Input.Host != "allowed.test" || b.Input.Host != "other.test" {
		t.Errorf("full stream: %s then %s", a.Input.Host, b.Input.Host)
	}

	t.Run("limit ends the stream", func(t *testing.T) {
		r, stop := f.stream(t, "?limit=1")
		defer stop()
		f.wantGet(t, "other.test", nil, http.StatusForbidden)
		readEvent(t, r)
		if _, err := r.ReadString('\n'); err != io.EOF {
			t.Errorf("after the limit: %v, want EOF", err)
		}
	})

	t.Run("a slow reader is dropped", func(t *testing.T) {
		r, stop := f.stream(t, "")
		defer stop()
		in := engine.Input{Host: "flood.test", Port: 80, Scheme: "http", Method: "GET"}
		for range 5000 {
			_, _ = f.engine.Decide(context.Background(), in)
		}
		f.engine.Flush(context.Background())
		n, err := io.Copy(io.Discard, r) // ends: the server dropped the stream
		if err != nil || n == 0 {
			t.Fatalf("draining the dropped stream: %d bytes, %v", n, err)
		}
		if m := f.unix.do(t, "GET", "/metrics", "").body; !strings.Contains(m, "regate_decision_stream_dropped_total") ||
			strings.Contains(m, "regate_decision_stream_dropped_total 0") {
			t.Errorf("regate_decision_stream_dropped_total did not move")
		}
	})

	t.Run("shutdown ends streams", func(t *testing.T) {
		r, stop := f.stream(t, "")
		defer stop()
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.admin.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown with open streams: %v", err)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			t.Errorf("stream after shutdown: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("shutdown took %v", d)
		}
	})
}

func TestStreamOutlivesReadTimeout(t *testing.T) {
	f := newFixture(t, fixtureOpts{readTimeout: 200 * time.Millisecond})
	r, stop := f.stream(t, "")
	defer stop()
	time.Sleep(500 * time.Millisecond)
	f.wantGet(t, "other.test", nil, http.StatusForbidden)
	if ev := readEvent(t, r); ev.Input.Host != "other.test" {
		t.Errorf("event %+v", ev)
	}
	// HEAD answers the headers and ends.
	f.unix.do(t, "HEAD", "/v1/decisions/stream", "").want(t, http.StatusOK)
}
