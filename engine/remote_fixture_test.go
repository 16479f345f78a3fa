package engine

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

// Fixtures for remote_test.go: a bundle server and a log and status
// receiver on loopback, and signed bundles built with OPA's Go API.

// fleetPolicy allows the hosts in the bundle's data; its reason names the
// bundle's data revision. system.log.mask hides the attempt id of
// "secret-" attempts from every decision-log sink.
const fleetPolicy = `package regate.network

default decision := {"allow": false, "reason": "not allowed", "rule": "default"}

decision := {"allow": true, "reason": data.regate.org.rev, "rule": "org"} if data.regate.org.allow[input.host]
`

const fleetMask = `package system.log

mask contains "/input/attempt_id" if startswith(input.input.attempt_id, "secret-")
`

// fleetBundle is the org bundle at revision rev allowing hosts.
func fleetBundle(rev string, hosts ...string) testBundle {
	allow := map[string]bool{}
	for _, h := range hosts {
		allow[h] = true
	}
	data, _ := json.Marshal(map[string]any{"allow": allow, "rev": rev})
	return testBundle{revision: rev, roots: []string{"regate/network", "regate/org", "system/log"}, files: map[string]string{
		"network.rego":         fleetPolicy,
		"mask.rego":            fleetMask,
		"regate/org/data.json": string(data),
	}}
}

// build writes b as a bundle tarball, signed with privateKey under kid
// unless privateKey is "". tamper, if set, changes files after signing:
// the tarball carries the old signature.
func (b testBundle) build(t *testing.T, privateKey, kid string, tamper map[string]string) []byte {
	t.Helper()
	dir := b.writeDir(t, filepath.Join(t.TempDir(), "bundle"))
	load := func() *bundle.Bundle {
		bb, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).WithSkipBundleVerification(true).AsBundle(dir)
		must(t, err)
		return bb
	}
	bb := load()
	if privateKey != "" {
		must(t, bb.GenerateSignature(bundle.NewSigningConfig(privateKey, "RS256", ""), kid, false))
	}
	if len(tamper) > 0 {
		sig := bb.Signatures
		for name, body := range tamper {
			writeFile(t, filepath.Join(dir, name), body)
		}
		bb = load()
		bb.Signatures = sig
	}
	var buf bytes.Buffer
	must(t, bundle.NewWriter(&buf).Write(*bb))
	return buf.Bytes()
}

// bundleServer serves files the way OPA bundle services do: an ETag on
// every response, 304 for a matching If-None-Match and, when longPoll is
// set, long polling (a request with "Prefer: wait=N" is held until the file
// changes or N seconds pass).
type bundleServer struct {
	*httptest.Server
	longPoll    bool
	mu          sync.Mutex
	files       map[string][]byte
	changed     chan struct{} // closed and replaced on every change
	down        bool
	ok, notMod  atomic.Int64 // 200 and 304 responses
	unavailable atomic.Int64 // 503 responses while down
}

func newBundleServer(t *testing.T, longPoll bool) *bundleServer {
	t.Helper()
	s := &bundleServer{longPoll: longPoll, files: map[string][]byte{}, changed: make(chan struct{})}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.Close)
	return s
}

// publish replaces a file and wakes long polls.
func (s *bundleServer) publish(name string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = body
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *bundleServer) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *bundleServer) current(name string) (body []byte, changed chan struct{}, down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.files[name], s.changed, s.down
}

func (s *bundleServer) serve(w http.ResponseWriter, r *http.Request) {
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

// receiver records what OPA uploads: decision-log batches posted to /logs
// (gzip'd JSON arrays) and status reports posted to /status.
type receiver struct {
	*httptest.Server
	down     atomic.Bool
	refused  atomic.Int64 // requests answered 503 while down
	mu       sync.Mutex
	events   []map[string]any
	statuses []map[string]any
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
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

func (rc *receiver) uploaded() []map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.events)
}

// reportedRevision is the revision of bundle name in the latest status
// report, "" before any.
func (rc *receiver) reportedRevision(name string) string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.statuses) == 0 {
		return ""
	}
	rev, _ := dig(rc.statuses[len(rc.statuses)-1], "bundles", name, "active_revision").(string)
	return rev
}

// dig follows keys through nested JSON objects.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// opaConfig is OPA's configuration for an org bundle from bundles, polled
// every second, signed with publicKey under kid "org" unless it is "". extra is merged on
// top: its "org" into the org bundle's configuration, objects (services,
// keys) entry by entry, anything else replaced.
func opaConfig(t *testing.T, bundles, publicKey string, extra map[string]any) []byte {
	t.Helper()
	org := map[string]any{
		"service": "bundles", "resource": "org.tar.gz",
		"polling": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 1},
	}
	cfg := map[string]any{
		"services": map[string]any{"bundles": map[string]any{"url": bundles}},
		"bundles":  map[string]any{"org": org},
	}
	if publicKey != "" {
		org["signing"] = map[string]any{"keyid": "org"}
		cfg["keys"] = map[string]any{"org": map[string]any{"algorithm": "RS256", "key": publicKey}}
	}
	for k, v := range extra {
		if k == "org" {
			for ok, ov := range v.(map[string]any) {
				org[ok] = ov
			}
			continue
		}
		cur, ok1 := cfg[k].(map[string]any)
		add, ok2 := v.(map[string]any)
		if ok1 && ok2 { // services, keys: add entries
			maps.Copy(cur, add)
			continue
		}
		cfg[k] = v
	}
	b, err := json.Marshal(cfg)
	must(t, err)
	return b
}

// revisionOf is the revision of bundle name deciding in e.
func revisionOf(e *Engine, name string) string { return e.Status().Bundles[name] }

// waitRevision waits until every engine decides by revision rev of name.
func waitRevision(t *testing.T, name, rev string, engines ...*Engine) {
	t.Helper()
	waitFor(t, name+" at revision "+rev, func() bool {
		for _, e := range engines {
			if revisionOf(e, name) != rev {
				return false
			}
		}
		return true
	})
}

func stopNow(e *Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.Stop(ctx)
}
