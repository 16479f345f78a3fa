package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

func TestBuildOPAConfigRefusesWhatRegateCannotHonour(t *testing.T) {
	cases := []struct {
		name, cfg, want string
	}{
		{"labels.id", `{"labels": {"id": "node-7"}}`, "opa.labels.id: cannot be configured"},
		{"labels.version", `{"labels": {"version": "9"}}`, "opa.labels.version: cannot be configured"},
		{"distributed_tracing", `{"distributed_tracing": {"type": "grpc"}}`, "opa.distributed_tracing: not supported"},
		{"storage", `{"storage": {"disk": {"directory": "/tmp/x"}}}`, "opa.storage: not supported"},
		{"metrics_export", `{"metrics_export": {}}`, "opa.metrics_export: not supported"},
		{"default_decision", `{"default_decision": "/regate/network/decision"}`, "opa.default_decision: not supported"},
		{"default_authorization_decision", `{"default_authorization_decision": "/system/authz/allow"}`, "opa.default_authorization_decision: not supported"},
		{"server.metrics", `{"server": {"metrics": {}}}`, "opa.server.metrics: not supported"},
		{"server.logger_plugin", `{"server": {"logger_plugin": "x"}}`, "opa.server.logger_plugin: not supported"},
		{"bad server.decoding", `{"server": {"decoding": {"max_length": "big"}}}`, "opa.server.decoding"},
		{"bad server.encoding", `{"server": {"encoding": {"gzip": {"compression_level": 42}}}}`, "opa.server.encoding"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateOPAConfig([]byte(tc.cfg))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ValidateOPAConfig(%s) = %v, want %q", tc.cfg, err, tc.want)
			}
		})
	}
	for _, ok := range []string{`{"labels": {"team": "x"}}`, `{"nd_builtin_cache": true}`, `{"server": {"decoding": {"max_length": 1024}, "encoding": {"gzip": {"min_length": 1024}}}}`,
		`{"caching": {"inter_query_builtin_cache": {"max_size_bytes": 1000000}}}`} {
		if err := ValidateOPAConfig([]byte(ok)); err != nil {
			t.Errorf("ValidateOPAConfig(%s) = %v, want nil", ok, err)
		}
	}
}

// TestOfflineReportsNothing: regate check's engine runs neither the status
// plugin nor decision-log upload.
func TestOfflineReportsNothing(t *testing.T) {
	raw := `{"services": {"c": {"url": "http://127.0.0.1:1"}}, "status": {"service": "c"},
		"decision_logs": {"service": "c", "console": true}}`
	out, _, err := buildOPAConfig([]byte(raw), opaOptions{offline: true})
	must(t, err)
	var cfg map[string]any
	must(t, json.Unmarshal(out, &cfg))
	if _, ok := cfg["status"]; ok {
		t.Errorf("offline configuration keeps status: %s", out)
	}
	if dl := cfg["decision_logs"].(map[string]any); len(dl) != 1 || dl["plugin"] != sinkPluginName {
		t.Errorf("offline decision_logs %v, want only regate's sink", dl)
	}
}

func TestInstanceID(t *testing.T) {
	a, err := instanceID([]byte(`{}`))
	must(t, err)
	b, err := instanceID([]byte(`{}`))
	must(t, err)
	if _, err := uuid.Parse(a); err != nil || a == b {
		t.Fatalf("ids %q and %q: want two distinct UUIDs", a, b)
	}
	dir := filepath.Join(t.TempDir(), "persist")
	cfg, _ := json.Marshal(map[string]string{"persistence_directory": dir})
	first, err := instanceID(cfg)
	must(t, err)
	again, err := instanceID(cfg)
	must(t, err)
	if first != again {
		t.Fatalf("persisted id %q then %q", first, again)
	}
	if fi, err := os.Stat(filepath.Join(dir, InstanceIDFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("id file: %v %v", fi, err)
	}
	must(t, os.WriteFile(filepath.Join(dir, InstanceIDFile), []byte("not-a-uuid\n"), 0o600))
	if _, err := instanceID(cfg); err == nil || !strings.Contains(err.Error(), "not a UUID") {
		t.Fatalf("a corrupt id file: %v, want refused", err)
	}
}

// TestNDBuiltinCacheLogged: with OPA's nd_builtin_cache, a decision's event
// carries the non-deterministic built-ins' results, as OPA's do.
func TestNDBuiltinCacheLogged(t *testing.T) {
	policy := "package regate.network\n\ndecision := {\"allow\": true, \"reason\": \"at\", \"at\": time.now_ns()}\n"
	for _, enabled := range []bool{false, true} {
		var log syncBuffer
		cfg, _ := json.Marshal(map[string]any{"nd_builtin_cache": enabled})
		e := startEngine(t, Config{Default: fstest.MapFS{"network.rego": {Data: []byte(policy)}}, DecisionLog: &log, OPA: cfg})
		_, err := e.Decide(context.Background(), Input{Host: "a.test", Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect})
		must(t, err)
		e.Flush(context.Background())
		evs := decodeEvents(t, log.String())
		if len(evs) != 1 {
			t.Fatalf("%d events", len(evs))
		}
		got := evs[0].NDBuiltinCache != nil && strings.Contains(jsonString(t, *evs[0].NDBuiltinCache), "time.now_ns")
		if got != enabled {
			t.Errorf("nd_builtin_cache %v: event carries it: %v", enabled, got)
		}
	}
}

func TestConsoleLoggerPrintsOPAsJSONLines(t *testing.T) {
	var out syncBuffer
	l := consoleLogger(&out).WithFields(map[string]any{"decision_id": "d1", "msg": "shadowed", "type": "openpolicyagent.org/decision_logs"})
	l.Info("Decision Log")
	l.Debug("not at info")
	var line map[string]any
	must(t, json.Unmarshal([]byte(out.String()), &line))
	if line["msg"] != "Decision Log" || line["level"] != "info" || line["decision_id"] != "d1" ||
		line["fields.msg"] != "shadowed" || line["time"] == nil {
		t.Errorf("line %v", line)
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return string(b)
}

// TestInterQueryCacheAcrossDecisions: http.send's inter-query cache (OPA's
// `caching`) serves later decisions, as it serves OPA's later queries.
func TestInterQueryCacheAcrossDecisions(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"allow": true}`))
	}))
	t.Cleanup(srv.Close)
	policy := fmt.Sprintf("package regate.network\n\ndecision := {\"allow\": http.send({\"method\": \"GET\", \"url\": %q, \"cache\": true}).body.allow, \"reason\": \"intel\"}\n", srv.URL)
	cfg := []byte(`{"caching": {"inter_query_builtin_cache": {"max_size_bytes": 1000000}}}`)
	e := startEngine(t, Config{Default: fstest.MapFS{"network.rego": {Data: []byte(policy)}}, OPA: cfg, DecisionTimeout: 10 * time.Second})
	for range 3 {
		d, err := e.Decide(context.Background(), Input{Host: "a.test", Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect})
		if err != nil || !d.Allow {
			t.Fatalf("decision %+v, %v", d, err)
		}
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the intelligence service was asked %d times, want once (cached)", n)
	}
}

// TestStatusPrometheus: OPA's status.prometheus registers OPA's status
// collectors on regate's registry.
func TestStatusPrometheus(t *testing.T) {
	reg := prometheus.NewRegistry()
	startEngine(t, Config{Default: simpleFS(simplePolicy), Registerer: reg, OPA: []byte(`{"status": {"prometheus": true}}`)})
	mfs, err := reg.Gather()
	must(t, err)
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	if !slices.Contains(names, "plugin_status_gauge") {
		t.Errorf("registry has %v, want OPA's plugin_status_gauge", names)
	}
}
