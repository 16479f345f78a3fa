package engine

import (
	"errors"
	"fmt"
	"maps"

	"github.com/open-policy-agent/opa/v1/rego"
)

// Query is the policy query every decision evaluates.
const Query = "data.regate.network.decision"

// DecisionPath is the decision-log `path` of Query.
const DecisionPath = "regate/network/decision"

// Decision is the answer for one connection. The zero Decision denies.
type Decision struct {
	// Allow is what the proxy enforces: true for an allow and for a deny in
	// audit (report-only) mode.
	Allow bool `json:"allow"`
	// Reason says why, in words fit for a 403 body.
	Reason string `json:"reason"`
	// Rule names the rule that decided, when the policy says.
	Rule string `json:"rule,omitempty"`
	// Audit is set when the policy denied in report mode: logged as "would
	// deny", enforced as allow.
	Audit bool `json:"audit,omitempty"`
	// Inspect is set when an allowed tunnel is to be inspected: its TLS
	// terminated and every request inside decided like a plain request.
	Inspect bool `json:"inspect,omitempty"`
	// ID is the decision-log event's decision_id.
	ID string `json:"decision_id,omitempty"`
}

// Reasons for the fail-closed denies the engine produces itself.
const (
	ReasonUndefined  = "policy decision is undefined"
	ReasonNotObject  = "policy decision is not an object"
	ReasonNoAllow    = "policy decision has no boolean allow"
	ReasonEvalError  = "policy evaluation failed"
	ReasonTimeout    = "policy evaluation timed out"
	ReasonNoPolicy   = "no policy is loaded"
	ReasonBadInput   = "invalid input"
	ReasonRuleEngine = "engine"
)

// ErrNoPolicy is returned by Decide before any policy has been loaded.
var ErrNoPolicy = errors.New("no policy loaded")

// denied builds a fail-closed deny.
func denied(reason string) Decision {
	return Decision{Allow: false, Reason: reason, Rule: ReasonRuleEngine}
}

// fromResult turns a query result set into a decision, failing closed on any
// shape other than an object with a boolean allow. A deny the policy marks
// audit: true is an audited allow (audited).
func fromResult(rs rego.ResultSet) (Decision, any) {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return denied(ReasonUndefined), nil
	}
	raw := rs[0].Expressions[0].Value
	obj, ok := raw.(map[string]any)
	if !ok {
		return denied(fmt.Sprintf("%s (%T)", ReasonNotObject, raw)), raw
	}
	allow, ok := obj["allow"].(bool)
	if !ok {
		return denied(ReasonNoAllow), raw
	}
	d := Decision{Allow: allow}
	d.Reason, _ = obj["reason"].(string)
	d.Rule, _ = obj["rule"].(string)
	d.Inspect, _ = obj["inspect"].(bool)
	d.Inspect = d.Inspect && d.Allow
	if d.Reason == "" {
		if allow {
			d.Reason = "allowed by policy"
		} else {
			d.Reason = "denied by policy"
		}
	}
	if audit, _ := obj["audit"].(bool); audit && !allow {
		return audited(d, obj)
	}
	return d, raw
}

// relax is audit mode imposed from outside the policy (--audit, config
// audit, an attempt registered with audit): the policy's own deny — an
// object with allow false — becomes the same audited allow as a policy
// that returned audit: true. Nothing else is relaxed: an allow stays as
// it is, and a fail-closed deny (undefined, malformed, an error, a
// timeout) has no policy deny to report, so it still denies.
func relax(d Decision, raw any) (Decision, any) {
	obj, ok := raw.(map[string]any)
	if d.Allow || !ok {
		return d, raw
	}
	if allow, ok := obj["allow"].(bool); !ok || allow {
		return d, raw
	}
	return audited(d, obj)
}

// audited is the one shape of an audited decision, whichever way audit
// came: enforced as an allow, with the policy's reason and rule, and
// logged as the policy's result with allow and audit true (a "would
// deny"). obj is copied, never changed: a cached result is shared.
func audited(d Decision, obj map[string]any) (Decision, any) {
	d.Allow, d.Audit = true, true
	d.Inspect, _ = obj["inspect"].(bool)
	out := maps.Clone(obj)
	out["allow"], out["audit"] = true, true
	return d, out
}
