package e2e

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

// A fleet of regate daemons, configured with an `opa:` section, decides by
// a signed bundle from a bundle server, follows its new revisions without a
// restart, refuses a tampered one, and uploads every decision with the
// bundle's revision to a log service; OPA's status plugin reports the
// revision to a control plane.
func TestFleet(t *testing.T) {
	private, public := keyPair(t)
	up := newUpstream(t)
	bundles := newFileServer(t)
	control := newUploadReceiver(t)
	bundles.publish("org.tar.gz", signedBundle(t, "r1", "allowed.test", private, nil))
	cfg := fleetConfig(t, bundles.URL, control.URL, public)

	d1 := startServe(t, "--config", cfg, "--admin", "off")
	d2 := startServe(t, "--config", cfg, "--admin", "off")
	allowed := "http://allowed.test:" + up.port() + "/"
	other := "http://other.test:" + up.port() + "/"
	for _, d := range []*daemon{d1, d2} {
		waitStatus(t, d, allowed, http.StatusOK)
		if code, _ := get(t, d, other); code != http.StatusForbidden {
			t.Errorf("r1: other.test answered %d, want 403", code)
		}
	}

	// A new revision, picked up by both daemons within the polling interval.
	bundles.publish("org.tar.gz", signedBundle(t, "r2", "other.test", private, nil))
	for _, d := range []*daemon{d1, d2} {
		waitStatus(t, d, other, http.StatusOK)
	}
	code, denied := get(t, d1, allowed)
	if code != http.StatusForbidden || denied == "" {
		t.Fatalf("r2: allowed.test answered %d (decision %q), want 403", code, denied)
	}

	// Tampered after signing: refused; r2 keeps deciding.
	bundles.publish("org.tar.gz", signedBundle(t, "r3", "other.test", private,
		map[string]string{"regate/org/data.json": `{"allow": {"allowed.test": true}, "rev": "r3"}`}))
	line := readLineContaining(t, d1.logs, "remote bundle refused")
	if !strings.Contains(line, "digest mismatch") || !strings.Contains(line, `"revision":"r2"`) {
		t.Errorf("refusal log line: %s", line)
	}
	if code, _ := get(t, d1, allowed); code != http.StatusForbidden {
		t.Errorf("after the tampered bundle: allowed.test answered %d, want 403", code)
	}
	if code, _ := get(t, d1, other); code != http.StatusOK {
		t.Errorf("after the tampered bundle: other.test answered %d, want 200", code)
	}

	// The denial, with its bundle revision, reached the log service; the
	// control plane saw r2.
	waitUntil(t, "the denial to be uploaded", func() bool {
		ev := control.event(denied)
		return ev != nil && dig(ev, "bundles", "org", "revision") == "r2" && dig(ev, "result", "allow") == false &&
			dig(ev, "input", "host") == "allowed.test" && dig(ev, "labels", "app") == "regate"
	})
	waitUntil(t, "a status report of r2", func() bool { return control.reportedRevision("org") == "r2" })
	for _, d := range []*daemon{d1, d2} {
		if code, logs := d.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("exit status %d after SIGTERM\n%s", code, logs)
		}
	}
}

func TestCheckFleetConfig(t *testing.T) {
	private, public := keyPair(t)
	bundles := newFileServer(t)
	bundles.publish("org.tar.gz", signedBundle(t, "r1", "allowed.test", private, nil))
	res := regate(t, nil, "check", "--config", fleetConfig(t, bundles.URL, bundles.URL, public))
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, `bundle org: revision "r1"`) {
		t.Errorf("stdout:\n%s", res.stdout)
	}

	broken := writeFile(t, t.TempDir(), "regate.yaml", `opa:
  services:
    bundles: {url: "http://127.0.0.1:1"}
  bundles:
    org: {service: bundels, resource: org.tar.gz}
  decision_log: {service: bundles}
`)
	res = regate(t, nil, "check", "--config", broken)
	wantCode(t, res, 1)
	for _, want := range []string{`opa.bundles.org: invalid configuration for bundle "org": service name "bundels" not found`, `opa.decision_log: unknown key`} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
}

// fleetConfig writes a regate configuration whose `opa:` section pulls the
// org bundle from bundles every second, verified with publicKey, and sends
// decision logs and status to control.
func fleetConfig(t *testing.T, bundles, control, publicKey string) string {
	t.Helper()
	cfg := map[string]any{
		"allow_cidrs": []string{"127.0.0.0/8"},
		"hosts":       map[string]string{"allowed.test": "127.0.0.1", "other.test": "127.0.0.1"},
		"opa": map[string]any{
			"services": map[string]any{"bundles": map[string]any{"url": bundles}, "control": map[string]any{"url": control}},
			"bundles": map[string]any{"org": map[string]any{
				"service": "bundles", "resource": "org.tar.gz", "signing": map[string]any{"keyid": "org"},
				"polling": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 1},
			}},
			"keys": map[string]any{"org": map[string]any{"algorithm": "RS256", "key": publicKey}},
			"decision_logs": map[string]any{"service": "control",
				"reporting": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 1}},
			"status": map[string]any{"service": "control"},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, t.TempDir(), "regate.json", string(b))
}

// fleetPolicy allows the hosts in the bundle's data.
const fleetPolicy = `package regate.network

default decision := {"allow": false, "reason": "not in the org bundle", "rule": "default"}

decision := {"allow": true, "reason": data.regate.org.rev, "rule": "org"} if data.regate.org.allow[input.host]
`

// signedBundle builds the org bundle at revision rev allowing host, signed
// with OPA's Go API as `opa build --signing-key` does. tamper changes files
// after signing.
func signedBundle(t *testing.T, rev, host, privateKey string, tamper map[string]string) []byte {
	t.Helper()
	dir := t.TempDir()
	writeFile(t, dir, ".manifest", fmt.Sprintf(`{"revision": %q, "roots": ["regate/network", "regate/org"]}`, rev))
	writeFile(t, dir, "network.rego", fleetPolicy)
	writeFile(t, dir, "regate/org/data.json", fmt.Sprintf(`{"allow": {%q: true}, "rev": %q}`, host, rev))
	load := func() *bundle.Bundle {
		b, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).WithSkipBundleVerification(true).AsBundle(dir)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := load()
	if err := b.GenerateSignature(bundle.NewSigningConfig(privateKey, "RS256", ""), "org", false); err != nil {
		t.Fatal(err)
	}
	if len(tamper) > 0 {
		sig := b.Signatures
		for name, body := range tamper {
			writeFile(t, dir, name, body)
		}
		b = load()
		b.Signatures = sig
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*b); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func keyPair(t *testing.T) (private, public string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})),
		string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}))
}

// fileServer serves files as a bundle server: ETag, and 304 for a
// matching If-None-Match.
type fileServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
}

func newFileServer(t *testing.T) *fileServer {
	t.Helper()
	s := &fileServer{files: map[string][]byte{}}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, ok := s.files[strings.TrimPrefix(r.URL.Path, "/")]
		s.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		sum := sha256.Sum256(body)
		etag := `"` + hex.EncodeToString(sum[:8]) + `"`
		w.Header().Set("ETag", etag)
		if slices.Contains(strings.Split(r.Header.Get("If-None-Match"), ", "), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("Content-Type", "application/gzip")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *fileServer) publish(name string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = body
}

// uploadReceiver records OPA's uploads: gzip'd decision-log batches on
// /logs, status reports on /status.
type uploadReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	events   map[string]map[string]any // by decision_id
	statuses []map[string]any
}

func newUploadReceiver(t *testing.T) *uploadReceiver {
	t.Helper()
	rc := &uploadReceiver{events: map[string]map[string]any{}}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
		switch r.URL.Path {
		case "/logs":
			var batch []map[string]any
			if err := json.NewDecoder(body).Decode(&batch); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			for _, ev := range batch {
				id, _ := ev["decision_id"].(string)
				rc.events[id] = ev
			}
		case "/status":
			var st map[string]any
			if err := json.NewDecoder(body).Decode(&st); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			rc.statuses = append(rc.statuses, st)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *uploadReceiver) event(id string) map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.events[id]
}

func (rc *uploadReceiver) reportedRevision(name string) string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.statuses) == 0 {
		return ""
	}
	rev, _ := dig(rc.statuses[len(rc.statuses)-1], "bundles", name, "active_revision").(string)
	return rev
}

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

// get fetches target through d's HTTP proxy and returns the status and the
// X-Regate-Decision-Id of a denial.
func get(t *testing.T, d *daemon, target string) (int, string) {
	t.Helper()
	proxy, _ := url.Parse("http://" + d.http)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxy)}}
	resp, err := client.Get(target)
	if err != nil {
		// A hung proxy: SIGQUIT makes the daemon print its goroutines.
		_ = d.cmd.Process.Signal(syscall.SIGQUIT)
		rest, _ := io.ReadAll(d.logs)
		t.Fatalf("GET %s through %s: %v\ndaemon log:\n%s", target, d.http, err, rest)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Regate-Decision-Id")
}

// waitStatus waits until target answers code through d (a remote bundle
// activates after the daemon starts serving; until then it denies).
func waitStatus(t *testing.T, d *daemon, target string, code int) {
	t.Helper()
	waitUntil(t, fmt.Sprintf("%s to answer %d", target, code), func() bool {
		got, _ := get(t, d, target)
		return got == code
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
