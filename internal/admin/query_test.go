package admin

import (
	"net/http"
	"testing"
	"time"
)

// TestDataQueriesAreDecisionLogged: an evaluation through OPA's data API is
// one decision-log event with the query's path and the decision id the
// answer carries, as `opa run --server` logs it; it is no connection
// decision, so the allow filters leave it out.
func TestDataQueriesAreDecisionLogged(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	var got struct {
		DecisionID string         `json:"decision_id"`
		Result     map[string]any `json:"result"`
	}
	f.unix.do(t, "POST", "/v1/data/regate/network/decision",
		`{"input": {"host": "allowed.test", "port": 443, "scheme": "https", "method": "CONNECT", "attempt_id": "", "host_is_ip": false, "attempt": {"labels": {}, "allow": [], "deny": []}}}`).
		want(t, http.StatusOK).decode(t, &got)
	if got.DecisionID == "" || got.Result["allow"] != false {
		t.Fatalf("answer %+v: want a decision id and the default policy's deny", got)
	}
	var events struct {
		Result []map[string]any `json:"result"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.unix.do(t, "GET", "/v1/decisions", "").want(t, http.StatusOK).decode(t, &events)
		if len(events.Result) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(events.Result) != 1 {
		t.Fatalf("events %v, want the one query", events.Result)
	}
	ev := events.Result[0]
	if ev["decision_id"] != got.DecisionID || ev["path"] != "regate/network/decision" ||
		ev["input"].(map[string]any)["host"] != "allowed.test" || ev["result"].(map[string]any)["allow"] != false {
		t.Errorf("event %v", ev)
	}
	if id, _ := ev["labels"].(map[string]any)["id"].(string); len(id) != 36 {
		t.Errorf("event labels %v: want the instance's UUID", ev["labels"])
	}
	f.unix.do(t, "GET", "/v1/decisions?allow=false", "").want(t, http.StatusOK).decode(t, &events)
	if len(events.Result) != 0 {
		t.Errorf("allow=false lists the query: %v", events.Result)
	}
}
