package main

import (
	"encoding/json"
	"testing"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/declogread"
)

// TestObservationsLeaveOutWhatAnAllowCannotUndo: only the policy's denies
// an allow pattern undoes (and audits) become observations; the rest is
// counted.
func TestObservationsLeaveOutWhatAnAllowCannotUndo(t *testing.T) {
	in := json.RawMessage(`{"host":"a.test","port":443}`)
	ev := func(path string, r declogread.Result) declogread.Event {
		return declogread.Event{DecisionID: "d", Path: path, Input: in, Result: r}
	}
	events := []declogread.Event{
		ev(engine.DecisionPath, declogread.Result{Rule: "default"}),                           // kept
		ev(engine.DecisionPath, declogread.Result{Allow: true, Audit: true, Rule: "default"}), // kept: audited
		ev(engine.DecisionPath, declogread.Result{Allow: true, Rule: "allow:a.test"}),
		ev(engine.DecisionPath, declogread.Result{Rule: "ssrf:loopback"}),
		ev(engine.DecisionPath, declogread.Result{Rule: "proxy:tls-check"}),
		ev(engine.DecisionPath, declogread.Result{Rule: engine.ReasonRuleEngine}),
		ev(engine.DecisionPath, declogread.Result{Rule: "deny:a.test"}),
		ev(engine.DecisionPath, declogread.Result{Rule: "attempt.deny:a.test"}),
		ev(engine.DecisionPath, declogread.Result{Rule: "methods"}),
		ev("v1/data/x", declogread.Result{}),
		{DecisionID: "d", Path: engine.DecisionPath, Input: json.RawMessage(`{"host":"a b","port":443}`)},
	}
	obs, skipped := observations(events)
	if len(obs) != 2 || obs[0].Host != "a.test" || obs[0].Port != 443 || obs[1].Rule != "default" {
		t.Errorf("observations %+v", obs)
	}
	n := 0
	for _, c := range skipped {
		n += c
	}
	if n != 8 || skipped["the proxy's own denies"] != 2 || skipped["policy errors"] != 1 || skipped["no destination in the input"] != 1 {
		t.Errorf("left out %v, want 8", skipped)
	}
}
