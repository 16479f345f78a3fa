package proxy

import (
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/enginetest"
	"github.com/regate/regate/policies"
)

// The real engine satisfies what the proxy consumes.
var (
	_ Decider        = (*engine.Engine)(nil)
	_ DecisionLogger = (*engine.Engine)(nil)
)

func startEngine(t *testing.T, log io.Writer, allow ...string) *engine.Engine {
	t.Helper()
	// methods set explicitly: the draft default policy refuses every plain
	// HTTP method when data.regate.methods is absent.
	data := map[string]any{"regate": map[string]any{"methods": []any{"GET", "HEAD"}}}
	return enginetest.Start(t, engine.Config{Default: policies.FS, Allow: allow, Data: data, DecisionLog: log, Logger: testLogger()})
}

// TestWithRealEngine runs the proxy on the embedded default policy: allow,
// policy deny and SSRF deny, each one decision-log event whose id is the
// one the client saw.
func TestWithRealEngine(t *testing.T) {
	up := echoUpstream(t)
	port := portOf(t, up.URL)
	log := &enginetest.SyncBuffer{}
	e := startEngine(t, log, "allowed.test", "loop.test")
	cfg := testConfig()
	cfg.AllowCIDRs = nil // loop.test (pinned to 127.0.0.1) must hit the guard
	cfg.Hosts["loop.test"] = cfg.Hosts["allowed.test"]
	cfg.DecisionLogger = e
	h := startProxy(t, cfg, e)
	tests := []struct {
		name, host, status, reason string
	}{
		{"policy deny", "denied.test", "403", "no rule allows denied.test"},
		{"SSRF deny after allow", "loop.test", "403", "destination resolves to a loopback address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := rawRequest(t, h.httpAddr, "GET http://"+tc.host+":"+port+"/ HTTP/1.1\r\nHost: "+tc.host+":"+port+"\r\nConnection: close\r\n\r\n")
			if !strings.Contains(statusLine(resp), tc.status) || !strings.Contains(resp, tc.reason) {
				t.Fatalf("got %q", resp)
			}
			id := headerValue(resp, "X-Regate-Decision-Id")
			e.Flush(context.Background())
			ev := findEvent(t, log.String(), id)
			if ev.Input.Host != tc.host || ev.Input.Client.Listener != "http" {
				t.Fatalf("event input %+v", ev.Input)
			}
		})
	}
	_, _, resp := connect(t, h.httpAddr, "denied.test:443", "")
	if resp.StatusCode != 403 || !strings.Contains(resp.Status, "no rule allows denied.test") {
		t.Fatalf("CONNECT: %s", resp.Status)
	}
	t.Run("allow", func(t *testing.T) {
		open := startProxy(t, testConfig(), e) // allow_cidrs 127.0.0.0/8
		resp := rawRequest(t, open.httpAddr, "GET http://allowed.test:"+port+"/ok HTTP/1.1\r\nHost: allowed.test:"+port+"\r\nConnection: close\r\n\r\n")
		if !strings.HasPrefix(resp, "HTTP/1.1 200") || !strings.Contains(resp, "GET /ok") {
			t.Fatalf("got %q", resp)
		}
		o := open.out.wait(t, 1)[0]
		e.Flush(context.Background())
		if ev := findEvent(t, log.String(), o.DecisionID); ev.Input.Path != "/ok" {
			t.Fatalf("event input %+v", ev.Input)
		}
	})
}

func headerValue(resp, name string) string {
	for line := range strings.SplitSeq(resp, "\r\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && strings.EqualFold(k, name) {
			return v
		}
	}
	return ""
}

type logEvent struct {
	DecisionID string       `json:"decision_id"`
	Input      engine.Input `json:"input"`
}

func findEvent(t *testing.T, log, id string) logEvent {
	t.Helper()
	if id == "" {
		t.Fatal("no decision id in the answer")
	}
	for line := range strings.SplitSeq(log, "\n") {
		var ev logEvent
		if json.Unmarshal([]byte(line), &ev) == nil && ev.DecisionID == id {
			return ev
		}
	}
	t.Fatalf("no decision-log event %s in %q", id, log)
	return logEvent{}
}
