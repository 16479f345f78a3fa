package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
)

// decodeEvents parses JSON lines strictly into OPA's EventV1: a field OPA
// does not know fails the test.
func decodeEvents(t *testing.T, s string) []logs.EventV1 {
	t.Helper()
	var out []logs.EventV1
	for _, line := range strings.Split(strings.TrimSpace(s), "\n") {
		if line == "" {
			continue
		}
		var raw map[string]json.RawMessage
		must(t, json.Unmarshal([]byte(line), &raw))
		delete(raw, "error") // EventV1.Error is an interface; regate never sets it
		clean, _ := json.Marshal(raw)
		dec := json.NewDecoder(bytes.NewReader(clean))
		dec.DisallowUnknownFields()
		var ev logs.EventV1
		must(t, dec.Decode(&ev))
		out = append(out, ev)
	}
	return out
}

// TestDecisionEventShape checks an event field by field against OPA's
// EventV1, on both delivery paths: straight to regate's sinks, and through
// OPA's decision-log plugin (taken when a mask policy exists).
func TestDecisionEventShape(t *testing.T) {
	mask := "package system.log\n\nmask contains \"/input/client\"\n"
	for _, viaOPA := range []bool{false, true} {
		t.Run(map[bool]string{false: "direct", true: "via OPA plugin"}[viaOPA], func(t *testing.T) {
			fsys := simpleFS(simplePolicy)
			if viaOPA {
				fsys["mask.rego"] = &fstest.MapFile{Data: []byte(mask)}
			}
			var log syncBuffer
			e := startEngine(t, Config{Default: fsys, Allow: []string{"a.test"}, DecisionLog: &log, DisableCache: true, ID: "node-1"})
			before := time.Now()
			d, err := e.Decide(context.Background(), Input{Host: "a.test", Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect,
				AttemptID: "att-1", Client: &Client{Addr: "127.0.0.1:5000", Listener: "http"}})
			must(t, err)
			e.Flush(context.Background())
			evs := decodeEvents(t, log.String())
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1", len(evs))
			}
			ev := evs[0]
			if ev.DecisionID != d.ID || ev.Path != DecisionPath {
				t.Fatalf("decision_id %q path %q", ev.DecisionID, ev.Path)
			}
			if ev.Labels["app"] != "regate" || ev.Labels["id"] != "node-1" || ev.Labels["version"] == "" {
				t.Fatalf("labels %v", ev.Labels)
			}
			if ev.Timestamp.Before(before.Add(-time.Second)) || ev.Timestamp.After(time.Now()) {
				t.Fatalf("timestamp %v", ev.Timestamp)
			}
			if _, ok := ev.Metrics["timer_rego_query_eval_ns"]; !ok {
				t.Fatalf("metrics %v lack timer_rego_query_eval_ns", ev.Metrics)
			}
			in := (*ev.Input).(map[string]any)
			if in["host"] != "a.test" || in["attempt_id"] != "att-1" || in["port"] != float64(443) {
				t.Fatalf("input %v", in)
			}
			res := (*ev.Result).(map[string]any)
			if res["allow"] != true {
				t.Fatalf("result %v", res)
			}
			_, hasClient := in["client"]
			if hasClient == viaOPA {
				t.Fatalf("client present=%v with mask policy=%v", hasClient, viaOPA)
			}
			if viaOPA && !slices.Contains(ev.Erased, "/input/client") {
				t.Fatalf("erased = %v", ev.Erased)
			}
		})
	}
}

// TestDecisionLogDropPolicy: system.log.drop removes events before any sink
// (the file, the ring buffer and the observers alike).
func TestDecisionLogDropPolicy(t *testing.T) {
	fsys := simpleFS(simplePolicy)
	fsys["drop.rego"] = &fstest.MapFile{Data: []byte("package system.log\n\ndrop if input.input.host == \"noisy.test\"\n")}
	var log syncBuffer
	e := startEngine(t, Config{Default: fsys, DecisionLog: &log})
	var seen []string
	e.Observe(func(ev *Event) { seen = append(seen, ev.Host) })
	for _, h := range []string{"noisy.test", "quiet.test"} {
		decideHost(t, e, h)
	}
	e.Flush(context.Background())
	if strings.Contains(log.String(), "noisy.test") || !strings.Contains(log.String(), "quiet.test") {
		t.Fatalf("drop policy not applied to the log:\n%s", log.String())
	}
	if len(seen) != 1 || seen[0] != "quiet.test" {
		t.Fatalf("observers saw %v", seen)
	}
	if got := e.Recent(nil, 10); len(got) != 1 {
		t.Fatalf("ring holds %d events", len(got))
	}
}

// TestObserverSeesDenies: the blocked-request observer and the filtered
// ring buffer.
func TestObserverSeesDenies(t *testing.T) {
	e := startEngine(t, Config{Default: simpleFS(simplePolicy), Allow: []string{"a.test"}})
	var denied []string
	e.Observe(func(ev *Event) {
		if !ev.Allow {
			denied = append(denied, ev.Host)
		}
	})
	for _, h := range []string{"a.test", "b.test", "c.test", "a.test"} {
		decideHost(t, e, h)
	}
	e.Flush(context.Background())
	if !slices.Equal(denied, []string{"b.test", "c.test"}) {
		t.Fatalf("observer saw denies %v", denied)
	}
	if got := e.Recent(func(ev *Event) bool { return ev.Allow }, 0); len(got) != 2 {
		t.Fatalf("%d allowed events in the ring, want 2", len(got))
	}
	ch, cancel := e.Subscribe(4, func(ev *Event) bool { return ev.Host == "z.test" })
	defer cancel()
	decideHost(t, e, "z.test")
	select {
	case ev := <-ch:
		if ev.Host != "z.test" || ev.Allow {
			t.Fatalf("stream event %+v", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no event on the stream")
	}
}

// TestFullQueueDropsWithoutBlocking: decisions never wait for the log.
func TestFullQueueDropsWithoutBlocking(t *testing.T) {
	block := make(chan struct{})
	e := startEngine(t, Config{Default: simpleFS(simplePolicy), LogQueue: 2})
	e.Observe(func(*Event) { <-block })
	done := make(chan struct{})
	go func() {
		for range 50 {
			decideHost(t, e, "a.test")
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Decide blocked on a stuck log sink")
	}
	close(block)
}

// TestLoggedInputSameOnBothPaths: the input a decision event records is the
// same whether it is written from the struct (no mask policy) or from the
// AST OPA's plugin masks.
func TestLoggedInputSameOnBothPaths(t *testing.T) {
	inputs := []Input{
		{Host: "a.test", Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect},
		{Host: "a.test", Port: 80, Scheme: SchemeHTTP, Method: "GET", Path: "/x", AttemptID: "a1", HostIsIP: true,
			Attempt: &Attempt{Labels: map[string]string{"team": "t"}, Allow: []string{"x.test"}},
			TLS:     &TLS{SNI: "b.test"}, Client: &Client{Addr: "127.0.0.1:1", Listener: "http"},
			Transparent: &Transparent{Addr: "198.18.0.7"}},
		{Host: "a.test", Port: 443, Scheme: SchemeHTTPS, Method: "POST", Path: "/", TLS: &TLS{SNI: "a.test", Inspected: true},
			Headers: map[string]string{"authorization": "Bearer s3cret-token", "x-api-key": "s3cret-key", "user-agent": "curl"}},
	}
	for _, in := range inputs {
		fromAST, err := ast.JSON(in.LogAST())
		must(t, err)
		b, err := json.Marshal(logInput{&in})
		must(t, err)
		var fromStruct any
		must(t, json.Unmarshal(b, &fromStruct))
		a, _ := json.Marshal(fromAST)
		c, _ := json.Marshal(fromStruct)
		if string(a) != string(c) {
			t.Fatalf("logged input differs:\nAST    %s\nstruct %s", a, c)
		}
		if strings.Contains(string(a)+string(c), "s3cret") {
			t.Fatalf("a credential header is logged:\n%s\n%s", a, c)
		}
	}
	if in := inputs[2]; in.Headers["authorization"] != "Bearer s3cret-token" {
		t.Error("masking the log changed the input the policy sees")
	}
}
