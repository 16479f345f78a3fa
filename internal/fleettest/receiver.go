package fleettest

import (
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// Receiver records what OPA uploads: decision-log batches posted to /logs
// (gzip'd JSON arrays) and status reports posted to /status.
type Receiver struct {
	*httptest.Server
	down     atomic.Bool
	refused  atomic.Int64 // requests answered 503 while down
	requests atomic.Int64 // every request received
	mu       sync.Mutex
	events   []map[string]any
	statuses []map[string]any
}

// NewReceiver starts a receiver on loopback, closed when the test ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	rc := &Receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

// SetDown makes the receiver refuse every upload with 503 while down.
func (rc *Receiver) SetDown(down bool) { rc.down.Store(down) }

// Refused counts the uploads refused while down.
func (rc *Receiver) Refused() int64 { return rc.refused.Load() }

// Requests counts every request received, accepted or not.
func (rc *Receiver) Requests() int64 { return rc.requests.Load() }

func (rc *Receiver) serve(w http.ResponseWriter, r *http.Request) {
	rc.requests.Add(1)
	if rc.down.Load() {
		rc.refused.Add(1)
		http.Error(w, "receiver down", http.StatusServiceUnavailable)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var err error
	switch r.URL.Path {
	case "/logs":
		var batch []map[string]any
		if err = json.NewDecoder(body).Decode(&batch); err == nil {
			rc.events = append(rc.events, batch...)
		}
	case "/status":
		var st map[string]any
		if err = json.NewDecoder(body).Decode(&st); err == nil {
			rc.statuses = append(rc.statuses, st)
		}
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
	}
}

// Events is every decision-log event received, in order.
func (rc *Receiver) Events() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.events)
}

// Event is the latest event with decision_id id, nil before any.
func (rc *Receiver) Event(id string) map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, ev := range slices.Backward(rc.events) {
		if ev["decision_id"] == id {
			return ev
		}
	}
	return nil
}

// Statuses is every status report received, in order.
func (rc *Receiver) Statuses() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.statuses)
}

// ReportedRevision is the revision of bundle name in the latest status
// report, "" before any.
func (rc *Receiver) ReportedRevision(name string) string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.statuses) == 0 {
		return ""
	}
	rev, _ := Dig(rc.statuses[len(rc.statuses)-1], "bundles", name, "active_revision").(string)
	return rev
}
