package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/regate/regate/internal/fleettest"
)

// A fleet of regate daemons, configured with an `opa:` section, decides by
// a signed bundle from a bundle server, follows its new revisions without a
// restart, refuses a tampered one, and uploads every decision with the
// bundle's revision to a log service; OPA's status plugin reports the
// revision to a control plane.
func TestFleet(t *testing.T) {
	private, public := fleettest.KeyPair(t)
	up := newUpstream(t)
	bundles := fleettest.NewBundleServer(t, false)
	control := fleettest.NewReceiver(t)
	bundles.Publish("org.tar.gz", signedBundle(t, "r1", "allowed.test", private, nil))
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
	bundles.Publish("org.tar.gz", signedBundle(t, "r2", "other.test", private, nil))
	for _, d := range []*daemon{d1, d2} {
		waitStatus(t, d, other, http.StatusOK)
	}
	code, denied := get(t, d1, allowed)
	if code != http.StatusForbidden || denied == "" {
		t.Fatalf("r2: allowed.test answered %d (decision %q), want 403", code, denied)
	}

	// Tampered after signing: refused; r2 keeps deciding.
	bundles.Publish("org.tar.gz", signedBundle(t, "r3", "other.test", private,
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
		ev := control.Event(denied)
		return ev != nil && fleettest.Dig(ev, "bundles", "org", "revision") == "r2" && fleettest.Dig(ev, "result", "allow") == false &&
			fleettest.Dig(ev, "input", "host") == "allowed.test" && fleettest.Dig(ev, "labels", "app") == "regate"
	})
	waitUntil(t, "a status report of r2", func() bool { return control.ReportedRevision("org") == "r2" })
	for _, d := range []*daemon{d1, d2} {
		if code, logs := d.stop(t, syscall.SIGTERM); code != 0 {
			t.Errorf("exit status %d after SIGTERM\n%s", code, logs)
		}
	}
}

// TestCheckFleetConfig: check validates the `opa:` section, downloads and
// activates the bundles, and reports nothing to the control plane: no
// status, no decision log (check must not phone home).
func TestCheckFleetConfig(t *testing.T) {
	private, public := fleettest.KeyPair(t)
	bundles := fleettest.NewBundleServer(t, false)
	control := fleettest.NewReceiver(t)
	bundles.Publish("org.tar.gz", signedBundle(t, "r1", "allowed.test", private, nil))
	res := regate(t, nil, "check", "--config", fleetConfig(t, bundles.URL, control.URL, public))
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, `bundle org: revision "r1"`) {
		t.Errorf("stdout:\n%s", res.stdout)
	}
	if n := control.Requests(); n != 0 {
		t.Errorf("check sent %d requests to the control plane (statuses %v), want none", n, control.Statuses())
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

// TestCheckRefusesWhatOPAIgnores: keys OPA's schema accepts but regate
// cannot honour are refused, each named; so is labels.id, which OPA
// replaces by its instance id (TestFleetSideBySideWithOPA shows it).
func TestCheckRefusesWhatOPAIgnores(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "regate.yaml", `opa:
  labels: {id: node-7, version: "9", team: payments}
  distributed_tracing: {type: grpc, address: "127.0.0.1:4317"}
  storage: {disk: {directory: /tmp/opa-disk}}
  metrics_export: {}
  default_decision: /regate/network/decision
  server: {metrics: {}, decoding: {max_length: 1024}}
`)
	res := regate(t, nil, "check", "--config", cfg)
	wantCode(t, res, 1)
	for _, want := range []string{"opa.labels.id: cannot be configured", "opa.labels.version: cannot be configured",
		"opa.distributed_tracing: not supported", "opa.storage: not supported", "opa.metrics_export: not supported",
		"opa.default_decision: not supported", "opa.server.metrics: not supported"} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, res.stderr)
		}
	}
	if strings.Contains(res.stderr, "decoding") {
		t.Errorf("server.decoding is honoured, not refused:\n%s", res.stderr)
	}
}

// TestInstanceID: each process has its own labels.id, a UUID; with OPA's
// persistence_directory it is kept there, the same across restarts.
func TestInstanceID(t *testing.T) {
	idOf := func(cfg string) string {
		t.Helper()
		log := filepath.Join(t.TempDir(), "decisions.jsonl")
		args := []string{"decide", "--decision-log", log, "example.test:443"}
		if cfg != "" {
			args = append([]string{"decide", "--config", cfg}, args[1:]...)
		}
		wantCode(t, regate(t, nil, args...), 1)
		b, err := os.ReadFile(log)
		if err != nil {
			t.Fatal(err)
		}
		var ev map[string]any
		if err := json.Unmarshal(b, &ev); err != nil {
			t.Fatalf("decision log %s: %v", b, err)
		}
		id, _ := fleettest.Dig(ev, "labels", "id").(string)
		if _, err := uuid.Parse(id); err != nil {
			t.Fatalf("labels.id %q is not a UUID", id)
		}
		return id
	}
	if a, b := idOf(""), idOf(""); a == b {
		t.Errorf("two processes share labels.id %s", a)
	}
	dir := filepath.Join(t.TempDir(), "opa")
	cfg := writeFile(t, t.TempDir(), "regate.yaml", "opa:\n  persistence_directory: "+dir+"\n")
	first := idOf(cfg)
	if again := idOf(cfg); again != first {
		t.Errorf("labels.id %s after a restart, want %s (kept in %s)", again, first, dir)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "regate-instance-id")); err != nil || strings.TrimSpace(string(b)) != first {
		t.Errorf("persisted id %q (%v), want %s", b, err, first)
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
	return fleettest.Bundle{Revision: rev, Roots: []string{"regate/network", "regate/org"}, Files: map[string]string{
		"network.rego":         fleetPolicy,
		"regate/org/data.json": fmt.Sprintf(`{"allow": {%q: true}, "rev": %q}`, host, rev),
	}}.Build(t, privateKey, "org", tamper)
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
