package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/regate/regate/internal/fleettest"
)

// TestRemoteSignedBundle walks two engines through the life of a signed
// remote bundle: first activation, a new revision picked up without a
// restart, and bundles that must be refused while the last good revision
// keeps deciding, visibly in regate's own surfaces (Fresh, Status, metrics)
// while OPA's plugin state stays OK, as OPA's does.
func TestRemoteSignedBundle(t *testing.T) {
	private, public := fleettest.KeyPair(t)
	otherPrivate, _ := fleettest.KeyPair(t)
	srv := fleettest.NewBundleServer(t, false)
	ctl := fleettest.NewReceiver(t)
	srv.Publish("org.tar.gz", fleetBundle("r1", "a.test").build(t, private, "org", nil))
	cfg := opaConfig(t, srv.URL, public, map[string]any{
		"services": map[string]any{"control": map[string]any{"url": ctl.URL}},
		"status":   map[string]any{"service": "control"},
	})
	reg := prometheus.NewRegistry()
	e1 := startEngine(t, Config{OPA: cfg, Registerer: reg})
	e2 := startEngine(t, Config{OPA: cfg})

	waitRevision(t, "org", "r1", e1, e2)
	if d := decideHost(t, e1, "a.test"); !d.Allow || d.Reason != "r1" {
		t.Fatalf("r1 not deciding: %+v", d)
	}
	waitFor(t, "Ready", func() bool { return e1.Ready() == nil })
	waitFor(t, "a 304 for an unchanged bundle", func() bool { return srv.NotModified() > 0 })
	waitFor(t, "status report of r1", func() bool { return ctl.ReportedRevision("org") == "r1" })
	wantRevisionGauge(t, reg, "org", "r1")

	srv.Publish("org.tar.gz", fleetBundle("r2", "b.test").build(t, private, "org", nil))
	waitRevision(t, "org", "r2", e1, e2)
	if d := decideHost(t, e1, "b.test"); !d.Allow || d.Reason != "r2" {
		t.Fatalf("r2 not deciding: %+v", d)
	}
	wantRevisionGauge(t, reg, "org", "r2")
	waitFor(t, "status report of r2", func() bool { return ctl.ReportedRevision("org") == "r2" })

	refused := []struct {
		name   string
		body   []byte
		errHas string
	}{
		{"tampered data, old signature", fleetBundle("r3", "b.test", "evil.test").build(t, private, "org",
			map[string]string{"regate/org/data.json": `{"allow": {"evil.test": true}, "rev": "r3"}`}), "digest mismatch"},
		{"signed with another key", fleetBundle("r3", "evil.test").build(t, otherPrivate, "org", nil), "verification"},
		{"unsigned", fleetBundle("r3", "evil.test").build(t, "", "", nil), ".signatures.json"},
		{"does not compile", testBundle{revision: "r3", roots: []string{"regate/network"}, files: map[string]string{
			"network.rego": "package regate.network\n\ndecision := {\"allow\": x}\n"}}.build(t, private, "org", nil), "rego_unsafe_var_error"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			srv.Publish("org.tar.gz", tc.body)
			waitFor(t, "the bundle to be refused", func() bool {
				err1, err2 := e1.Fresh(), e2.Fresh()
				return err1 != nil && err2 != nil && strings.Contains(err1.Error(), tc.errHas) && strings.Contains(err2.Error(), tc.errHas)
			})
			err := e1.Fresh()
			if !strings.Contains(err.Error(), "bundle org") || !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("Fresh() = %v, want it to name bundle org and %q", err, tc.errHas)
			}
			if msg := e1.Status().BundleFailures["org"]; !strings.Contains(msg, tc.errHas) {
				t.Errorf("Status().BundleFailures[org] = %q, want %q", msg, tc.errHas)
			}
			if st := e1.Status().Plugins["bundle"]; st == nil || st.State != plugins.StateOK {
				t.Errorf("Status().Plugins[bundle] = %+v, want OK (OPA's: activated once, the last good revision decides)", st)
			}
			if err := e1.Ready(); err != nil {
				t.Errorf("Ready() = %v, want nil while the last good revision decides", err)
			}
			for _, e := range []*Engine{e1, e2} {
				if d := decideHost(t, e, "evil.test"); d.Allow {
					t.Errorf("refused bundle decides: %+v", d)
				}
				if d := decideHost(t, e, "b.test"); !d.Allow || d.Reason != "r2" {
					t.Errorf("last good revision lost: %+v", d)
				}
			}
			if rev := revisionOf(e1, "org"); rev != "r2" {
				t.Errorf("revision %q, want r2", rev)
			}
		})
	}
	if n := sample(t, reg, "regate_bundle_loads_total", "bundle", "org", "result", "failed"); n < float64(len(refused)) {
		t.Errorf("regate_bundle_loads_total{result=failed} = %v, want >= %d", n, len(refused))
	}

	srv.Publish("org.tar.gz", fleetBundle("r4", "c.test").build(t, private, "org", nil))
	waitRevision(t, "org", "r4", e1, e2)
	waitFor(t, "Fresh after recovery", func() bool { return e1.Fresh() == nil })
	for _, result := range []string{"activated", "not_modified"} {
		if sample(t, reg, "regate_bundle_loads_total", "bundle", "org", "result", result) == 0 {
			t.Errorf("regate_bundle_loads_total{result=%q} not counted", result)
		}
	}
}

// TestRemoteLongPolling: a server that supports long polling delivers a new
// revision at once, long before the (long) polling delay.
func TestRemoteLongPolling(t *testing.T) {
	private, public := fleettest.KeyPair(t)
	srv := fleettest.NewBundleServer(t, true)
	srv.Publish("org.tar.gz", fleetBundle("r1", "a.test").build(t, private, "org", nil))
	e := startEngine(t, Config{OPA: opaConfig(t, srv.URL, public, map[string]any{"org": map[string]any{
		"polling": map[string]any{"min_delay_seconds": 60, "max_delay_seconds": 120, "long_polling_timeout_seconds": 30},
	}})})
	waitRevision(t, "org", "r1", e)
	time.Sleep(100 * time.Millisecond) // let the next long poll reach the server
	start := time.Now()
	srv.Publish("org.tar.gz", fleetBundle("r2", "b.test").build(t, private, "org", nil))
	waitRevision(t, "org", "r2", e)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("new revision took %v", took)
	}
}

// TestRemotePersistedBundle: with persist, a regate that starts while the
// bundle server is down decides by the last bundle it activated, says so in
// Ready, and moves on when the server is back.
func TestRemotePersistedBundle(t *testing.T) {
	private, public := fleettest.KeyPair(t)
	srv := fleettest.NewBundleServer(t, false)
	srv.Publish("org.tar.gz", fleetBundle("r1", "a.test").build(t, private, "org", nil))
	cfg := opaConfig(t, srv.URL, public, map[string]any{
		"persistence_directory": t.TempDir(),
		"org":                   map[string]any{"persist": true},
	})
	first := startEngine(t, Config{OPA: cfg})
	waitRevision(t, "org", "r1", first)
	stopNow(first)

	srv.SetDown(true)
	e := startEngine(t, Config{OPA: cfg})
	if rev := revisionOf(e, "org"); rev != "r1" {
		t.Fatalf("persisted bundle not active at start: revision %q", rev)
	}
	if d := decideHost(t, e, "a.test"); !d.Allow {
		t.Fatalf("persisted bundle not deciding: %+v", d)
	}
	waitFor(t, "Fresh to report the download failure", func() bool {
		err := e.Fresh()
		return err != nil && strings.Contains(err.Error(), "bundle org") && strings.Contains(err.Error(), "Service Unavailable")
	})
	srv.Publish("org.tar.gz", fleetBundle("r2", "b.test").build(t, private, "org", nil))
	srv.SetDown(false)
	waitRevision(t, "org", "r2", e)
	waitFor(t, "Ready and Fresh", func() bool { return e.Ready() == nil && e.Fresh() == nil })
}

// TestRemoteOrgWithLocalTeamBundle: a remote org bundle beside a local team
// bundle directory; each updates on its own, the local one by fsnotify.
func TestRemoteOrgWithLocalTeamBundle(t *testing.T) {
	srv := fleettest.NewBundleServer(t, false)
	srv.Publish("org.tar.gz", orgBundle("org-1").build(t, "", "", nil))
	team := teamBundle("team-1").writeDir(t, filepath.Join(t.TempDir(), "team"))
	// Unsigned: with keys configured the engine verifies local bundles too,
	// and a directory's signature names files by the path it was signed at.
	e := startEngine(t, Config{Policies: []string{team}, Watch: true, Debounce: 20 * time.Millisecond,
		OPA: opaConfig(t, srv.URL, "", nil)})
	waitRevision(t, "org", "org-1", e)
	if revisionOf(e, team) != "team-1" || !decideHost(t, e, "team.test").Allow || decideHost(t, e, "evil.test").Allow {
		t.Fatalf("org and team together: revisions %v", e.Status().Bundles)
	}

	saveByRename(t, filepath.Join(team, ".manifest"), `{"revision": "team-2", "roots": ["regate/team"]}`)
	saveByRename(t, filepath.Join(team, "regate", "team", "data.json"), `{"allow": {"new.test": true}}`)
	waitFor(t, "the local team bundle to reload", func() bool {
		return revisionOf(e, team) == "team-2" && decideHost(t, e, "new.test").Allow
	})
	if revisionOf(e, "org") != "org-1" || decideHost(t, e, "team.test").Allow {
		t.Fatalf("after the team reload: revisions %v", e.Status().Bundles)
	}

	org2 := orgBundle("org-2")
	org2.files["regate/org/data.json"] = `{"deny": {"new.test": true}}`
	srv.Publish("org.tar.gz", org2.build(t, "", "", nil))
	waitRevision(t, "org", "org-2", e)
	if d := decideHost(t, e, "new.test"); d.Allow || d.Reason != "org deny" {
		t.Fatalf("org-2 deny not applied: %+v", d)
	}
	if revisionOf(e, team) != "team-2" {
		t.Fatalf("team bundle lost: %v", e.Status().Bundles)
	}
}

// TestRemoteOrgAndTeamBundles: two remote bundles with disjoint roots
// decide together; a team bundle that claims the org's roots is refused
// and the last good pair keeps deciding.
func TestRemoteOrgAndTeamBundles(t *testing.T) {
	srv := fleettest.NewBundleServer(t, false)
	srv.Publish("org.tar.gz", orgBundle("org-1").build(t, "", "", nil))
	srv.Publish("team.tar.gz", teamBundle("team-1").build(t, "", "", nil))
	e := startEngine(t, Config{OPA: opaConfig(t, srv.URL, "", map[string]any{"bundles": map[string]any{"team": map[string]any{
		"service": "bundles", "resource": "team.tar.gz",
		"polling": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 1},
	}}})})
	waitRevision(t, "org", "org-1", e)
	waitRevision(t, "team", "team-1", e)
	if !decideHost(t, e, "team.test").Allow || decideHost(t, e, "evil.test").Allow {
		t.Fatal("org and team bundles do not decide together")
	}

	greedy := testBundle{revision: "team-2", roots: []string{"regate"}, files: map[string]string{
		"regate/team/data.json": `{"allow": {"evil.test": true}}`,
	}}
	srv.Publish("team.tar.gz", greedy.build(t, "", "", nil))
	waitFor(t, "the overlapping team bundle to be refused", func() bool {
		err := e.Fresh()
		return err != nil && strings.Contains(err.Error(), "bundle team") && strings.Contains(err.Error(), "overlap")
	})
	if revisionOf(e, "team") != "team-1" || !decideHost(t, e, "team.test").Allow || decideHost(t, e, "evil.test").Allow {
		t.Fatalf("last good bundles lost: %v", e.Status().Bundles)
	}
}

// TestDecisionLogUpload: OPA's upload runs beside regate's sinks. An
// unreachable log service neither slows nor loses decisions; when it comes
// back every event arrives once, masked, with the bundles' revisions and
// the attempt.
func TestDecisionLogUpload(t *testing.T) {
	private, public := fleettest.KeyPair(t)
	srv := fleettest.NewBundleServer(t, false)
	srv.Publish("org.tar.gz", fleetBundle("r1", "a.test").build(t, private, "org", nil))
	logs := fleettest.NewReceiver(t)
	logs.SetDown(true)
	var local syncBuffer
	reg := prometheus.NewRegistry()
	e := startEngine(t, Config{DecisionLog: &local, Registerer: reg, OPA: opaConfig(t, srv.URL, public, map[string]any{
		"services": map[string]any{"logs": map[string]any{"url": logs.URL}},
		"decision_logs": map[string]any{"service": "logs", "reporting": map[string]any{
			"min_delay_seconds": 1, "max_delay_seconds": 1, "buffer_size_limit_bytes": 1 << 20,
		}},
	})})
	waitRevision(t, "org", "r1", e)

	const n = 50
	attempt := &Attempt{Labels: map[string]string{"job": "build"}}
	for i := range n {
		id := fmt.Sprintf("a%d", i)
		if i%10 == 0 {
			id = fmt.Sprintf("secret-%d", i)
		}
		start := time.Now()
		d, err := e.Decide(context.Background(), Input{Host: "a.test", Port: 443, Scheme: SchemeHTTPS,
			Method: MethodConnect, AttemptID: id, Attempt: attempt})
		if err != nil || !d.Allow {
			t.Fatalf("decision %d: %+v, %v", i, d, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("decision %d took %v with the log service down", i, took)
		}
	}
	waitFor(t, "an upload to be refused", func() bool { return logs.Refused() > 0 })
	logs.SetDown(false)
	waitFor(t, "every event to arrive", func() bool { return len(logs.Events()) >= n })

	seen := map[string]bool{}
	for _, ev := range logs.Events() {
		id, _ := ev["decision_id"].(string)
		if seen[id] {
			t.Errorf("event %s uploaded twice", id)
		}
		seen[id] = true
		if rev := fleettest.Dig(ev, "bundles", "org", "revision"); rev != "r1" {
			t.Errorf("event %s: bundles.org.revision = %v", id, rev)
		}
		if fleettest.Dig(ev, "labels", "app") != "regate" || fleettest.Dig(ev, "input", "attempt", "labels", "job") != "build" {
			t.Errorf("event %s lacks labels.app or input.attempt: %v", id, ev)
		}
		attemptID, hasID := fleettest.Dig(ev, "input").(map[string]any)["attempt_id"]
		if erased := fmt.Sprint(ev["erased"]); hasID == strings.Contains(erased, "/input/attempt_id") ||
			strings.HasPrefix(fmt.Sprint(attemptID), "secret-") {
			t.Errorf("event %s: attempt_id %v, erased %s: mask not applied as written", id, attemptID, erased)
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct events uploaded, want %d", len(seen), n)
	}
	if dropped := sample(t, reg, "regate_decision_log_dropped_total"); dropped != 0 {
		t.Errorf("regate_decision_log_dropped_total = %v, want 0", dropped)
	}
	e.Flush(context.Background())
	if strings.Contains(local.String(), `"attempt_id":"secret-`) {
		t.Error("the local decision log shows a masked attempt id")
	}
}

// sample is the value of the counter or gauge name with exactly labels
// (name=value pairs), 0 when absent.
func sample(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	must(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			var got []string
			for _, lp := range m.GetLabel() {
				got = append(got, lp.GetName(), lp.GetValue())
			}
			if slices.Equal(got, labels) {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

// wantRevisionGauge waits until regate_policy_revision_info shows rev for
// bundle name.
func wantRevisionGauge(t *testing.T, reg *prometheus.Registry, name, rev string) {
	t.Helper()
	waitFor(t, "regate_policy_revision_info for "+rev, func() bool {
		return sample(t, reg, "regate_policy_revision_info", "bundle", name, "revision", rev) == 1
	})
}
