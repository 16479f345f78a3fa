package replay

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/declogread"
	"github.com/regate/regate/internal/enginetest"
	"github.com/regate/regate/policies"
)

// start is a real engine with the default policy and allow.
func start(t testing.TB, log *enginetest.SyncBuffer, allow ...string) *engine.Engine {
	cfg := engine.Config{Default: policies.FS, Allow: allow, Logger: slog.New(slog.DiscardHandler), DecisionTimeout: 10 * time.Second}
	if log != nil {
		cfg.DecisionLog = log
	}
	return enginetest.Start(t, cfg)
}

func conn(host string, port int) engine.Input {
	return engine.Input{Host: host, Port: port, Scheme: engine.SchemeHTTPS, Method: engine.MethodConnect, AttemptID: "a1"}
}

// logged decides ins with an engine allowing allow and reads its log back.
func logged(t *testing.T, allow []string, ins ...engine.Input) []declogread.Event {
	t.Helper()
	var buf enginetest.SyncBuffer
	e := start(t, &buf, allow...)
	for _, in := range ins {
		if _, err := e.Decide(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	e.Flush(context.Background())
	evs, probs, err := declogread.Read(bytes.NewReader(buf.Bytes()), "d.jsonl")
	if err != nil || len(probs) > 0 {
		t.Fatalf("reading the log: %v %v", err, probs)
	}
	return evs
}

func TestReplay(t *testing.T) {
	evs := logged(t, []string{"a.test", "b.test"},
		conn("a.test", 443), conn("b.test", 443), conn("b.test", 8443), conn("c.test", 443), conn("b.test", 443))
	// A masked input, a query of OPA's REST API and an SSRF deny of the proxy.
	masked := evs[0]
	masked.Masked, masked.Source = []string{"/input/attempt_id"}, "masked"
	query := evs[0]
	query.Path = "regate/other"
	own := evs[3]
	own.Result = declogread.Result{Rule: "ssrf:loopback"}
	evs = append(evs, masked, query, own)

	stricter := start(t, nil, "a.test", "c.test")
	r, err := Run(t.Context(), stricter, evs)
	if err != nil {
		t.Fatal(err)
	}
	if r.Events != 8 || r.Replayed != 5 || r.Unchanged != 1 || r.NotReplayableTotal() != 1 || len(r.Skipped) != 2 {
		t.Errorf("report %+v", r)
	}
	if len(r.Changes) != 2 {
		t.Fatalf("changes %+v", r.Changes)
	}
	down, up := r.Changes[0], r.Changes[1]
	if down.Change != AllowToDeny || down.Host != "b.test" || down.Count != 3 || fmt.Sprint(down.Ports) != "[443 8443]" ||
		down.Was != "allow:b.test" || down.Now != "default" || down.FirstDecisionID != evs[1].DecisionID {
		t.Errorf("allow→deny group %+v", down)
	}
	if up.Change != DenyToAllow || up.Host != "c.test" || up.Count != 1 || up.Now != "allow:c.test" || up.FirstDecisionID != evs[3].DecisionID {
		t.Errorf("deny→allow group %+v", up)
	}
	if r.NotReplayable["input masked (/input/attempt_id)"] != 1 {
		t.Errorf("not replayable %v", r.NotReplayable)
	}
	var text bytes.Buffer
	if err := Write(&text, r, "text"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"replayed 5 of 8 events: 4 changed (3 allow→deny, 1 deny→allow), 1 unchanged",
		"not replayable: 1 (input masked (/input/attempt_id): 1)", "allow→deny  b.test  443,8443  allow:b.test  default"} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, text.String())
		}
	}

	same := start(t, nil, "a.test", "b.test")
	r, err = Run(t.Context(), same, evs)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Changes) != 0 || r.Unchanged != 5 {
		t.Errorf("replay against the same policy: %+v", r)
	}
}

// TestReplayAudited: an audited event was the policy's deny; a policy that
// allows it is a change, one that still denies it (even in audit) is not.
func TestReplayAudited(t *testing.T) {
	evs := logged(t, nil, conn("a.test", 443), conn("b.test", 443))
	for i := range evs {
		evs[i].Result.Allow, evs[i].Result.Audit = true, true
	}
	r, err := Run(t.Context(), start(t, nil, "a.test"), evs)
	if err != nil {
		t.Fatal(err)
	}
	if r.Unchanged != 1 || len(r.Changes) != 1 || r.Changes[0].Change != DenyToAllow || r.Changes[0].Host != "a.test" {
		t.Errorf("report %+v %+v", r, r.Changes)
	}
}

// BenchmarkReplay reads and replays 100,000 logged connection decisions
// (10,000 distinct hosts) against the default policy with 1,000 allow
// patterns: what `regate replay` does with a day's log.
func BenchmarkReplay(b *testing.B) {
	const n, hosts = 100_000, 10_000
	var doc bytes.Buffer
	for i := range n {
		h := i % hosts
		fmt.Fprintf(&doc, `{"decision_id":"id-%d","path":"regate/network/decision","timestamp":"2026-01-02T03:04:05Z","labels":{"app":"regate"},`+
			`"input":{"host":"h%d.team%d.example","port":443,"scheme":"https","method":"CONNECT","attempt_id":"a%d","host_is_ip":false,"attempt":{"labels":{},"allow":[],"deny":[]}},`+
			`"result":{"allow":%t,"reason":"r","rule":"x"}}`+"\n", i, h, h%1000, i%50, h%2 == 0)
	}
	allow := make([]string, 1000)
	for i := range allow {
		allow[i] = fmt.Sprintf("**.team%d.example", i)
	}
	e := start(b, nil, allow...)
	b.ReportAllocs()
	for b.Loop() {
		evs, probs, err := declogread.Read(bytes.NewReader(doc.Bytes()), "bench")
		if err != nil || len(probs) > 0 || len(evs) != n {
			b.Fatalf("read %d events: %v %v", len(evs), err, probs)
		}
		r, err := Run(context.Background(), e, evs)
		if err != nil || r.Replayed != n || r.Changed(DenyToAllow) != n/2 {
			b.Fatalf("report %+v: %v", r, err)
		}
	}
	b.ReportMetric(float64(n), "events/op")
}
