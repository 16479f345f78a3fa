package engine

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestFailClosed: every shape of result other than an object with a boolean
// allow, every evaluation error and a timeout deny, with a reason that says
// which.
func TestFailClosed(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		reason string
	}{
		{"undefined", "package regate.network\n\nother := 1\n", ReasonUndefined},
		{"not an object", "package regate.network\n\ndecision := true\n", ReasonNotObject},
		{"string", "package regate.network\n\ndecision := \"allow\"\n", ReasonNotObject},
		{"no allow", "package regate.network\n\ndecision := {\"reason\": \"x\"}\n", ReasonNoAllow},
		{"allow not boolean", "package regate.network\n\ndecision := {\"allow\": \"true\"}\n", ReasonNoAllow},
		{"allow is 1", "package regate.network\n\ndecision := {\"allow\": 1}\n", ReasonNoAllow},
		{"conflict error", "package regate.network\n\ndecision := {\"allow\": true} if input.port > 0\n\ndecision := {\"allow\": false} if input.port > 1\n", ReasonEvalError},
		{"timeout", "package regate.network\n\ndecision := {\"allow\": count([x | some x in numbers.range(1, 100000000)]) > 0}\n", ReasonTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := startEngine(t, Config{Default: simpleFS(tc.policy), DecisionTimeout: 50 * time.Millisecond})
			d, _ := e.Decide(context.Background(), Input{Host: "example.com", Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect})
			if d.Allow {
				t.Fatalf("decision %+v allows", d)
			}
			if !strings.HasPrefix(d.Reason, tc.reason) {
				t.Fatalf("reason %q, want prefix %q", d.Reason, tc.reason)
			}
			if d.ID == "" {
				t.Fatal("a fail-closed deny must still carry a decision id")
			}
		})
	}
}

func TestZeroDecisionDenies(t *testing.T) {
	var d Decision
	if d.Allow {
		t.Fatal("zero Decision allows")
	}
}

func TestAuditModeAllowsAndSaysSo(t *testing.T) {
	policy := "package regate.network\n\ndecision := {\"allow\": false, \"audit\": true, \"reason\": \"would deny\", \"rule\": \"deny:x\"}\n"
	e := startEngine(t, Config{Default: simpleFS(policy)})
	d, err := e.Decide(context.Background(), Input{Host: "example.com", Port: 443})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || !d.Audit || d.Reason != "would deny" {
		t.Fatalf("decision %+v, want an audited allow", d)
	}
}

func TestStartRefusesBrokenPolicy(t *testing.T) {
	e, err := New(Config{Default: simpleFS("package regate.network\n\ndecision := {\n")})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Start(context.Background())
	if err == nil {
		t.Fatal("Start accepted a policy that does not parse")
	}
	if !strings.Contains(err.Error(), "network.rego:") {
		t.Fatalf("error %q does not name the file and line", err)
	}
	d, _ := e.Decide(context.Background(), Input{Host: "example.com", Port: 80})
	if d.Allow || d.Reason != ReasonNoPolicy {
		t.Fatalf("decision without policy = %+v", d)
	}
}
