package e2e

import (
	"encoding/json"
	"github.com/regate/regate/internal/enginetest"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/regate/regate/internal/fleettest"
)

// sidePolicy allows the hosts of the bundle's data; an allow reads the
// clock, so that nd_builtin_cache has something to record.
const sidePolicy = `package regate.network

default decision := {"allow": false, "reason": "not in the org bundle", "rule": "default"}

decision := {"allow": true, "reason": data.regate.org.rev, "rule": "org", "at": time.now_ns()} if data.regate.org.allow[input.host]
`

// sideInput is a connection's input, as POSTed to /v1/data.
const sideInput = `{"input": {"host": "allowed.test", "port": 443, "scheme": "https", "method": "CONNECT", "attempt_id": "", "host_is_ip": false, "attempt": {"labels": {}, "allow": [], "deny": []}}}`

// TestFleetSideBySideWithOPA runs the genuine `opa run --server` and `regate
// serve` with one OPA configuration against one fake control plane, and
// compares what a control plane and OPA's clients see of each: labels.id,
// GET /v1/status, decision logs of POST /v1/data (uploaded, and on the
// console), nd_builtin_cache, server.decoding.max_length, and /health,
// /health?bundles, /health?plugins and the status report through a
// bundle-server outage. Then what regate adds: /health?bundles&fresh, the
// regate part of /v1/status and the failed-load metric.
func TestFleetSideBySideWithOPA(t *testing.T) {
	up := newUpstream(t)
	bundles := fleettest.NewBundleServer(t, false)
	control := fleettest.NewReceiver(t)
	bundles.Publish("org.tar.gz", fleettest.Bundle{Revision: "r1", Roots: []string{"regate/network", "regate/org"}, Files: map[string]string{
		"network.rego":         sidePolicy,
		"regate/org/data.json": `{"allow": {"allowed.test": true}, "rev": "r1"}`,
	}}.Build(t, "", "", nil))
	opaCfg := map[string]any{
		"services": map[string]any{"bundles": map[string]any{"url": bundles.URL}, "control": map[string]any{"url": control.URL}},
		"bundles": map[string]any{"org": map[string]any{"service": "bundles", "resource": "org.tar.gz",
			"polling": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 1}}},
		"status": map[string]any{"service": "control"},
		"decision_logs": map[string]any{"service": "control", "console": true,
			"reporting": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 1}},
		"nd_builtin_cache": true,
		"server":           map[string]any{"decoding": map[string]any{"max_length": 1024}},
		"labels":           map[string]any{"fleet": "side-by-side"},
	}
	regateCfg := writeJSON(t, map[string]any{
		"allow_cidrs": []string{"127.0.0.0/8"},
		"hosts":       map[string]string{"allowed.test": "127.0.0.1"},
		"opa":         opaCfg,
	})
	// OPA is also given a labels.id, to show what it does with one (regate
	// refuses it: TestCheckRefusesWhatOPAIgnores).
	opaOnly := maps.Clone(opaCfg)
	opaOnly["labels"] = map[string]any{"fleet": "side-by-side", "id": "configured"}
	o := startOPA(t, writeJSON(t, opaOnly))
	d := startServe(t, "--config", regateCfg)
	// The daemon must never block on its standard error: collect it.
	regateLog := &enginetest.SyncBuffer{}
	go func() { _, _ = io.Copy(regateLog, d.logs) }()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("regate's log:\n%s\nopa's log:\n%s", regateLog, o.stderr)
		}
	})
	r := newAdminClient(t, d.admin, "")
	both := map[string]*adminClient{"opa": o.admin, "regate": r}

	// Both activate r1 and report it.
	status := map[string]map[string]any{}
	waitFor(t, "both to activate r1", func() bool {
		for name, c := range both {
			status[name] = getResult(t, c, "/v1/status")
			if fleettest.Dig(status[name], "bundles", "org", "active_revision") != "r1" {
				return false
			}
		}
		return true
	})

	// 1. labels.id: a fresh UUID per process; OPA replaces a configured one.
	ids := map[string]string{}
	for name, st := range status {
		id, _ := fleettest.Dig(st, "labels", "id").(string)
		if _, err := uuid.Parse(id); err != nil {
			t.Errorf("%s: labels.id %q is not a UUID", name, id)
		}
		ids[name] = id
	}
	if ids["opa"] == ids["regate"] {
		t.Errorf("opa and regate share labels.id %q", ids["opa"])
	}

	// 5. POST /v1/data is decision-logged by both, with the query's path,
	// nd_builtin_cache, uploaded and printed on the console.
	decided := map[string]string{}
	for name, c := range both {
		var ans struct {
			DecisionID string `json:"decision_id"`
		}
		decodeJSON(t, c.want(t, "POST", "/v1/data/regate/network/decision", sideInput, 200), &ans)
		decided[name] = ans.DecisionID
	}
	if code, _ := get(t, d, "http://allowed.test:"+up.port()+"/"); code != 200 {
		t.Fatalf("allowed.test through regate: %d", code)
	}
	uploaded := map[string]map[string]any{}
	waitFor(t, "both POST /v1/data decisions to be uploaded", func() bool {
		for name, id := range decided {
			if uploaded[name] = control.Event(id); uploaded[name] == nil {
				return false
			}
		}
		return true
	})
	for name, ev := range uploaded {
		if ev["path"] != "regate/network/decision" || fleettest.Dig(ev, "labels", "id") != ids[name] ||
			fleettest.Dig(ev, "input", "host") != "allowed.test" || fleettest.Dig(ev, "result", "allow") != true {
			t.Errorf("%s: uploaded event %v", name, ev)
		}
		if _, ok := fleettest.Dig(ev, "nd_builtin_cache", "time.now_ns").(map[string]any); !ok {
			t.Errorf("%s: nd_builtin_cache %v, want time.now_ns recorded", name, ev["nd_builtin_cache"])
		}
	}
	var consoleOPA, consoleRegate string
	waitFor(t, "both console decision logs", func() bool {
		consoleOPA = lineContaining(o.stderr.String(), decided["opa"])
		consoleRegate = lineContaining(regateLog.String(), decided["regate"])
		return consoleOPA != "" && consoleRegate != ""
	})
	for name, line := range map[string]string{"opa": consoleOPA, "regate": consoleRegate} {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%s: console line is not JSON: %v\n%s", name, err, line)
		}
		if ev["msg"] != "Decision Log" || ev["level"] != "info" || ev["type"] != "openpolicyagent.org/decision_logs" ||
			ev["path"] != "regate/network/decision" {
			t.Errorf("%s: console line %s", name, line)
		}
	}
	var proxied map[string]any
	waitFor(t, "regate's proxy decision to be uploaded", func() bool {
		for _, ev := range control.Events() {
			if fleettest.Dig(ev, "input", "scheme") == "http" && fleettest.Dig(ev, "input", "host") == "allowed.test" {
				proxied = ev
				return true
			}
		}
		return false
	})
	if _, ok := fleettest.Dig(proxied, "nd_builtin_cache", "time.now_ns").(map[string]any); !ok {
		t.Errorf("a proxy decision's nd_builtin_cache: %v", proxied["nd_builtin_cache"])
	}

	// 3. GET /v1/status: OPA's shape, regate's own fields under "regate".
	for name, c := range both {
		status[name] = getResult(t, c, "/v1/status")
	}
	compareStatus(t, status["opa"], status["regate"])

	// 4. server.decoding.max_length: above it, both answer 400 alike.
	for path, big := range map[string]string{
		"/v1/data/big":     `{"x": "` + strings.Repeat("x", 2048) + `"}`,
		"/v1/policies/big": "package big\n\n# " + strings.Repeat("x", 2048) + "\n",
	} {
		answers := map[string]string{}
		for name, c := range both {
			code, body := c.do(t, "PUT", path, big)
			if code != http.StatusBadRequest {
				t.Errorf("%s: PUT %s of 2 KiB with max_length 1024: %d %s, want 400", name, path, code, body)
			}
			answers[name] = strings.Join(strings.Fields(body), " ")
		}
		if answers["opa"] != answers["regate"] {
			t.Errorf("oversized PUT %s: opa answers %s, regate %s", path, answers["opa"], answers["regate"])
		}
	}

	// 2. A bundle-server outage after activation: OPA's probes and status
	// stay OK, the bundle's status carries the error.
	bundles.SetDown(true)
	waitFor(t, "both to see the outage", func() bool {
		for _, c := range both {
			if fleettest.Dig(getResult(t, c, "/v1/status"), "bundles", "org", "code") == nil {
				return false
			}
		}
		return true
	})
	for name, c := range both {
		for _, q := range []string{"/health", "/health?bundles", "/health?plugins"} {
			if code, body := c.do(t, "GET", q, ""); code != 200 || strings.TrimSpace(body) != "{}" {
				t.Errorf("%s: GET %s during the outage: %d %s, want 200 {}", name, q, code, body)
			}
		}
		st := getResult(t, c, "/v1/status")
		status[name] = st
		if s := fleettest.Dig(st, "plugins", "bundle", "state"); s != "OK" {
			t.Errorf("%s: plugins.bundle.state %v during the outage, want OK", name, s)
		}
	}
	for _, key := range []string{"active_revision", "code", "message", "http_code"} {
		if a, b := fleettest.Dig(status["opa"], "bundles", "org", key), fleettest.Dig(status["regate"], "bundles", "org", key); a != b {
			t.Errorf("bundles.org.%s during the outage: opa %v, regate %v", key, a, b)
		}
	}
	waitFor(t, "both to report the outage to the control plane", func() bool {
		for _, id := range ids {
			if reportOf(control, id, "code") == nil {
				return false
			}
		}
		return true
	})
	for name, id := range ids {
		if rep := reportOf(control, id, "code"); fleettest.Dig(rep, "plugins", "bundle", "state") != "OK" {
			t.Errorf("%s: status report during the outage: plugins %v, want bundle OK", name, rep["plugins"])
		}
	}

	// regate's own signal of the failed download.
	if code, body := r.do(t, "GET", "/health?bundles&fresh", ""); code != 500 || !strings.Contains(body, "bundle org: last download failed") {
		t.Errorf("GET /health?bundles&fresh during the outage: %d %s, want 500 naming bundle org", code, body)
	}
	reg := status["regate"]["regate"].(map[string]any)
	if reg["fresh"] != false || !strings.Contains(fmtAny(fleettest.Dig(reg, "policy", "bundle_failures", "org")), "Service Unavailable") {
		t.Errorf("regate status during the outage: fresh %v, bundle_failures %v", reg["fresh"], fleettest.Dig(reg, "policy", "bundle_failures"))
	}
	if m := r.want(t, "GET", "/metrics", "", 200); !strings.Contains(m, `regate_bundle_loads_total{bundle="org",result="failed"}`) {
		t.Error("/metrics lacks regate_bundle_loads_total{result=\"failed\"}")
	}
	bundles.SetDown(false)
	waitFor(t, "regate to be fresh again", func() bool {
		code, _ := r.do(t, "GET", "/health?bundles&fresh", "")
		return code == 200
	})
}

// compareStatus fails unless regate's GET /v1/status has OPA's shape: the
// same top-level keys (plus "regate"), the same fields for bundle org, the
// same labels (plus regate's app and regate_version) and plugins (plus
// regate's decision sink), all in the same states.
func compareStatus(t *testing.T, opa, regate map[string]any) {
	t.Helper()
	if got, want := keys(regate), append(keys(opa), "regate"); !slices.Equal(got, sorted(want)) {
		t.Errorf("/v1/status keys: regate %v, opa %v", got, keys(opa))
	}
	ob, _ := fleettest.Dig(opa, "bundles", "org").(map[string]any)
	rb, _ := fleettest.Dig(regate, "bundles", "org").(map[string]any)
	if !slices.Equal(keys(ob), keys(rb)) {
		t.Errorf("bundles.org keys: regate %v, opa %v", keys(rb), keys(ob))
	}
	for _, k := range []string{"name", "active_revision", "type"} {
		if ob[k] != rb[k] {
			t.Errorf("bundles.org.%s: regate %v, opa %v", k, rb[k], ob[k])
		}
	}
	ol, _ := opa["labels"].(map[string]any)
	rl, _ := regate["labels"].(map[string]any)
	if !slices.Equal(keys(rl), sorted(append(keys(ol), "app", "regate_version"))) || rl["version"] != ol["version"] || rl["fleet"] != ol["fleet"] {
		t.Errorf("labels: regate %v, opa %v", rl, ol)
	}
	op, _ := opa["plugins"].(map[string]any)
	rp, _ := regate["plugins"].(map[string]any)
	if !slices.Equal(keys(rp), sorted(append(keys(op), "regate_decisions"))) {
		t.Errorf("plugins: regate %v, opa %v", keys(rp), keys(op))
	}
	for name := range op {
		if a, b := fleettest.Dig(op, name, "state"), fleettest.Dig(rp, name, "state"); a != b {
			t.Errorf("plugins.%s.state: regate %v, opa %v", name, b, a)
		}
	}
	if _, ok := fleettest.Dig(regate, "metrics", "prometheus", "regate_decisions_total").(map[string]any); !ok {
		t.Error("metrics.prometheus lacks regate's metrics")
	}
	if _, ok := fleettest.Dig(opa, "metrics", "prometheus").(map[string]any); !ok {
		t.Error("opa's metrics.prometheus is missing: the comparison is void")
	}
}

// reportOf is the latest status report of instance id whose bundle org has
// key set; nil before one.
func reportOf(rc *fleettest.Receiver, id, key string) map[string]any {
	for _, st := range slices.Backward(rc.Statuses()) {
		if fleettest.Dig(st, "labels", "id") == id && fleettest.Dig(st, "bundles", "org", key) != nil {
			return st
		}
	}
	return nil
}

// getResult is the "result" of GET path.
func getResult(t *testing.T, c *adminClient, path string) map[string]any {
	t.Helper()
	var v struct {
		Result map[string]any `json:"result"`
	}
	decodeJSON(t, c.want(t, "GET", path, "", 200), &v)
	return v.Result
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("decoding %s: %v", s, err)
	}
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, t.TempDir(), "config.json", string(b))
}

func keys(m map[string]any) []string { return slices.Sorted(maps.Keys(m)) }

func sorted(s []string) []string { slices.Sort(s); return s }

func fmtAny(v any) string {
	s, _ := v.(string)
	return s
}
