package fleettest

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BundleServer serves files the way OPA bundle services do: an ETag on
// every response, 304 for a matching If-None-Match and, when long polling,
// a request with "Prefer: wait=N" held until the file changes or N seconds
// pass.
type BundleServer struct {
	*httptest.Server
	longPoll    bool
	mu          sync.Mutex
	files       map[string][]byte
	changed     chan struct{} // closed and replaced on every change
	down        bool
	ok, notMod  atomic.Int64 // 200 and 304 responses
	unavailable atomic.Int64 // 503 responses while down
}

// NewBundleServer starts a bundle server on loopback, closed when the test
// ends.
func NewBundleServer(t testing.TB, longPoll bool) *BundleServer {
	t.Helper()
	s := &BundleServer{longPoll: longPoll, files: map[string][]byte{}, changed: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// Publish replaces a file and wakes long polls.
func (s *BundleServer) Publish(name string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = body
	close(s.changed)
	s.changed = make(chan struct{})
}

// SetDown makes the server answer 503 to everything while down.
func (s *BundleServer) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// Served, NotModified and Unavailable count 200, 304 and 503 responses.
func (s *BundleServer) Served() int64      { return s.ok.Load() }
func (s *BundleServer) NotModified() int64 { return s.notMod.Load() }
func (s *BundleServer) Unavailable() int64 { return s.unavailable.Load() }

func (s *BundleServer) current(name string) (body []byte, changed chan struct{}, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[name], s.changed, s.down
}

func (s *BundleServer) serve(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, "/")
	deadline := time.Now().Add(preferWait(r.Header.Get("Prefer")))
	for {
		body, changed, down := s.current(name)
		if down {
			s.unavailable.Add(1)
			http.Error(w, "bundle service down", http.StatusServiceUnavailable)
			return
		}
		if body == nil {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		w.Header().Set("ETag", etag)
		if s.longPoll {
			w.Header().Set("Content-Type", "application/vnd.openpolicyagent.bundles")
		} else {
			w.Header().Set("Content-Type", "application/gzip")
		}
		if !slices.Contains(strings.Split(r.Header.Get("If-None-Match"), ", "), etag) {
			s.ok.Add(1)
			_, _ = w.Write(body)
			return
		}
		if !s.longPoll || time.Now().After(deadline) {
			s.notMod.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		select {
		case <-changed:
		case <-time.After(time.Until(deadline)):
		case <-r.Context().Done():
			return
		}
	}
}

// preferWait is the wait=N of a Prefer header.
func preferWait(prefer string) time.Duration {
	for p := range strings.SplitSeq(prefer, ";") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(p), "wait="); ok {
			n, _ := strconv.Atoi(v)
			return time.Duration(n) * time.Second
		}
	}
	return 0
}
