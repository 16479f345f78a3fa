package engine

import (
	"context"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// auditEvent decides in with e and returns the decision and its logged
// result, read back from the JSON-lines decision log.
func auditEvent(t *testing.T, e *Engine, log *syncBuffer, in Input) (Decision, map[string]any) {
	t.Helper()
	d, _ := e.Decide(context.Background(), in)
	e.Flush(context.Background())
	for _, line := range strings.Split(strings.TrimSpace(log.String()), "\n") {
		var ev struct {
			DecisionID string         `json:"decision_id"`
			Result     map[string]any `json:"result"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("decision log line %q: %v", line, err)
		}
		if ev.DecisionID == d.ID {
			return d, ev.Result
		}
	}
	t.Fatalf("decision %s not in the log:\n%s", d.ID, log.String())
	return d, nil
}

const auditDenyPolicy = `package regate.network

decision := {"allow": true, "reason": "listed", "rule": "allow:ok.test"} if input.host == "ok.test"

else := {"allow": false, "reason": concat("", ["no rule allows ", input.host]), "rule": "default"}
`

// TestAuditRelaxesThePolicysDeny: under Config.Audit the policy's deny is
// allowed, marked audit, with the policy's reason and rule; the decision
// log's result is the same as when the policy itself returns audit: true;
// an allow is untouched.
func TestAuditRelaxesThePolicysDeny(t *testing.T) {
	in := Input{Host: "x.test", Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect}
	want := Decision{Allow: true, Audit: true, Reason: "no rule allows x.test", Rule: "default"}
	wantResult := map[string]any{"allow": true, "audit": true, "reason": "no rule allows x.test", "rule": "default"}
	results := map[string]map[string]any{}
	for _, tc := range []struct {
		name   string
		policy string
		audit  bool
	}{
		{"--audit", auditDenyPolicy, true},
		{"policy returns audit", strings.Replace(auditDenyPolicy, `"rule": "default"}`, `"rule": "default", "audit": true}`, 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log syncBuffer
			reg := prometheus.NewRegistry()
			e := startEngine(t, Config{Default: simpleFS(tc.policy), Audit: tc.audit, DecisionLog: &log, Registerer: reg})
			d, result := auditEvent(t, e, &log, in)
			d.ID = ""
			if d != want {
				t.Errorf("decision %+v, want %+v", d, want)
			}
			results[tc.name] = result
			allow, _ := auditEvent(t, e, &log, Input{Host: "ok.test", Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect})
			if !allow.Allow || allow.Audit || allow.Rule != "allow:ok.test" {
				t.Errorf("an allowed destination: %+v, want the policy's plain allow", allow)
			}
			if n := testutil.ToFloat64(e.metrics.decisions.WithLabelValues("audit", "default")); n != 1 {
				t.Errorf(`regate_decisions_total{result="audit",reason_class="default"} = %v, want 1`, n)
			}
		})
	}
	for name, got := range results {
		if !reflect.DeepEqual(got, wantResult) {
			t.Errorf("%s: logged result %v, want %v", name, got, wantResult)
		}
	}
}

// TestAuditNeverRelaxesFailClosed: audit mode reports the policy's denies;
// an undefined or malformed decision, an evaluation error or a timeout has
// none to report and still denies.
func TestAuditNeverRelaxesFailClosed(t *testing.T) {
	for _, tc := range []struct{ name, policy string }{
		{"undefined", "package regate.network\n\nother := 1\n"},
		{"not an object", "package regate.network\n\ndecision := false\n"},
		{"no allow", "package regate.network\n\ndecision := {\"reason\": \"x\", \"audit\": true}\n"},
		{"conflict error", "package regate.network\n\ndecision := {\"allow\": false} if input.port > 0\n\ndecision := {\"allow\": true} if input.port > 1\n"},
		{"timeout", "package regate.network\n\ndecision := {\"allow\": count([x | some x in numbers.range(1, 100000000)]) < 0}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEngine(t, Config{Default: simpleFS(tc.policy), Audit: true, DecisionTimeout: 50 * time.Millisecond})
			d, _ := e.Decide(context.Background(), Input{Host: "x.test", Port: 443, Attempt: &Attempt{Audit: true}})
			if d.Allow || d.Audit || d.Rule != ReasonRuleEngine {
				t.Fatalf("decision %+v, want the engine's fail-closed deny", d)
			}
		})
	}
}

// TestAuditPerAttempt: an attempt registered with audit has the policy's
// denies relaxed, another attempt to the same destination is denied, in
// either order and whatever the decision cache holds (the policy does not
// read input.attempt, so both share its cache entry).
func TestAuditPerAttempt(t *testing.T) {
	e := startEngine(t, Config{Default: simpleFS(auditDenyPolicy)})
	audited := Input{Host: "x.test", Port: 443, Attempt: &Attempt{Audit: true}}
	plain := Input{Host: "x.test", Port: 443, Attempt: &Attempt{}}
	for i, in := range []Input{plain, audited, plain, audited} {
		d, err := e.Decide(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		if want := in.Attempt.Audit; d.Allow != want || d.Audit != want || d.Reason != "no rule allows x.test" || d.Rule != "default" {
			t.Errorf("decision %d (attempt audit %v): %+v", i, want, d)
		}
	}
}

// TestAuditAttemptIsInput: the policy sees input.attempt.audit, present
// only when true, and decision logs record it.
func TestAuditAttemptIsInput(t *testing.T) {
	var log syncBuffer
	policy := "package regate.network\n\ndecision := {\"allow\": true, \"reason\": sprintf(\"audit %v\", [object.get(input.attempt, \"audit\", \"absent\")])}\n"
	e := startEngine(t, Config{Default: simpleFS(policy), DecisionLog: &log})
	for _, tc := range []struct {
		audit  bool
		reason string
	}{{false, "audit absent"}, {true, "audit true"}} {
		d, err := e.Decide(context.Background(), Input{Host: "x.test", Port: 443, Attempt: &Attempt{Audit: tc.audit}})
		if err != nil || d.Reason != tc.reason {
			t.Errorf("attempt audit %v: %+v (%v), want reason %q", tc.audit, d, err, tc.reason)
		}
	}
	e.Flush(context.Background())
	if n := strings.Count(log.String(), `"audit":true`); n != 1 {
		t.Errorf("%d logged inputs with attempt audit, want 1:\n%s", n, log.String())
	}
}
