package declogread

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/enginetest"
	"github.com/regate/regate/policies"
)

// engineLog decides ins with a real engine (the default policy, allowing
// allowed.test) and returns its decision log, as --decision-log writes it.
func engineLog(t *testing.T, ins ...engine.Input) []byte {
	t.Helper()
	var buf enginetest.SyncBuffer
	e := enginetest.Start(t, engine.Config{
		Default: policies.FS, Allow: []string{"allowed.test"}, DecisionLog: &buf,
		Logger: slog.New(slog.DiscardHandler), DecisionTimeout: 10 * time.Second,
	})
	for _, in := range ins {
		if _, err := e.Decide(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	e.Flush(context.Background())
	return buf.Bytes()
}

func conn(host string, port int) engine.Input {
	return engine.Input{Host: host, Port: port, Scheme: engine.SchemeHTTPS, Method: engine.MethodConnect, AttemptID: "a1",
		Attempt: &engine.Attempt{Labels: map[string]string{"job": "build"}}}
}

func TestReadFormats(t *testing.T) {
	lines := engineLog(t, conn("allowed.test", 443), conn("denied.test", 8080))
	var arr []json.RawMessage
	for l := range bytes.Lines(lines) {
		arr = append(arr, bytes.TrimSpace(l))
	}
	batch, _ := json.Marshal(arr)
	answer, _ := json.Marshal(map[string]any{"result": arr})
	var pretty bytes.Buffer
	_ = json.Indent(&pretty, answer, "", "  ")
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"json lines", lines},
		{"json lines, blank lines, CRLF", bytes.ReplaceAll(append([]byte("\n"), lines...), []byte("\n"), []byte("\r\n\n"))},
		{"upload batch", batch},
		{"gzip upload batch", gz(t, batch)},
		{"two gzip batches concatenated", append(gz(t, batch), gz(t, []byte("[]"))...)},
		{"admin answer", answer},
		{"admin answer, indented", pretty.Bytes()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, probs, err := Read(bytes.NewReader(tc.data), "log")
			if err != nil || len(probs) > 0 {
				t.Fatalf("Read: %v %v", err, probs)
			}
			if len(evs) != 2 {
				t.Fatalf("read %d events, want 2", len(evs))
			}
			a, d := evs[0], evs[1]
			if !a.Connection() || !a.Result.PolicyAllowed() || a.Result.Rule != "allow:allowed.test" {
				t.Errorf("first event = %+v, want the allow", a)
			}
			if d.Result.PolicyAllowed() || d.Result.Rule != "default" || d.DecisionID == "" {
				t.Errorf("second event = %+v, want the default deny", d)
			}
			dest, err := d.Dest()
			if err != nil || dest.Host != "denied.test" || dest.Port != 8080 || dest.AttemptID != "a1" || dest.Labels["job"] != "build" {
				t.Errorf("Dest = %+v, %v", dest, err)
			}
			in, err := d.PolicyInput()
			if err != nil || in.Host != "denied.test" || in.Attempt.Labels["job"] != "build" {
				t.Errorf("PolicyInput = %+v, %v", in, err)
			}
		})
	}
}

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestReadSkipsBadLines: each bad line is a problem with its line number;
// the good lines around it are read all the same.
func TestReadSkipsBadLines(t *testing.T) {
	lines := bytes.Split(bytes.TrimSpace(engineLog(t, conn("a.test", 443), conn("b.test", 443))), []byte("\n"))
	doc := strings.Join([]string{
		string(lines[0]),
		`{"decision_id": "x", "result": {"allow": false}`, // 2: truncated
		`not json`,                    // 3
		`{"result": {"allow": true}}`, // 4: no decision_id
		`42`,                          // 5
		`{"decision_id": 7}`,          // 6: wrong type
		string(lines[1]),              // 7
	}, "\n")
	evs, probs, err := Read(strings.NewReader(doc), "d.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].Source != "d.jsonl:1" || evs[1].Source != "d.jsonl:7" {
		t.Errorf("events %+v, want lines 1 and 7", evs)
	}
	var at []string
	for _, p := range probs {
		at = append(at, p.Source)
	}
	if got, want := strings.Join(at, " "), "d.jsonl:2 d.jsonl:3 d.jsonl:4 d.jsonl:5 d.jsonl:6"; got != want {
		t.Errorf("problems at %s, want %s (%v)", got, want, probs)
	}
}

// TestReadBrokenBatch: a batch cut short is reported where it breaks.
func TestReadBrokenBatch(t *testing.T) {
	evs, probs, err := Read(strings.NewReader("[\n{\"decision_id\": \"a\", \"path\": \"regate/network/decision\"},\n{\"decision_id\": "), "b.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 || len(probs) != 1 || !strings.HasPrefix(probs[0].Source, "b.json:") {
		t.Errorf("events %v, problems %v", evs, probs)
	}
	if _, _, err := Read(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0}), "x.gz"); err == nil {
		t.Error("a broken gzip header reads")
	}
}

func TestResultAsTheEngineReadsIt(t *testing.T) {
	for _, tc := range []struct {
		raw          string
		allowed      bool
		audit        bool
		rule, reason string
	}{
		{`{"allow": true, "rule": "r"}`, true, false, "r", ""},
		{`{"allow": false, "audit": true, "rule": "default"}`, false, true, "default", ""},
		{`{"allow": true, "audit": true, "rule": "default"}`, false, true, "default", ""},
		{`null`, false, false, engine.ReasonRuleEngine, engine.ReasonUndefined},
		{``, false, false, engine.ReasonRuleEngine, engine.ReasonUndefined},
		{`"yes"`, false, false, engine.ReasonRuleEngine, engine.ReasonUndefined},
		{`{"allow": "true"}`, false, false, engine.ReasonRuleEngine, engine.ReasonNoAllow},
	} {
		r := readResult(json.RawMessage(tc.raw))
		if r.PolicyAllowed() != tc.allowed || r.Audit != tc.audit || r.Rule != tc.rule || (tc.reason != "" && r.Reason != tc.reason) {
			t.Errorf("readResult(%s) = %+v", tc.raw, r)
		}
	}
}

func TestPolicyInputRefusesWhatWasNotDecided(t *testing.T) {
	good := `{"host":"a.test","port":443,"scheme":"https","method":"CONNECT","attempt_id":"","host_is_ip":false,"attempt":{"labels":{},"allow":[],"deny":[]}}`
	for _, tc := range []struct {
		name   string
		ev     Event
		reason string
	}{
		{"erased", Event{Erased: []string{"/input"}}, "input erased"},
		{"masked field", Event{Input: json.RawMessage(good), Masked: []string{"/input/headers/x-token"}}, "masked"},
		{"erased field", Event{Input: json.RawMessage(good), Erased: []string{"/input/path"}}, "masked"},
		{"redacted header", Event{Input: json.RawMessage(`{"host":"a.test","port":80,"headers":{"authorization":"[redacted]"}}`)}, "header authorization redacted"},
		{"unknown field", Event{Input: json.RawMessage(`{"host":"a.test","port":80,"future":1}`)}, "unknown field"},
		{"host not normalised", Event{Input: json.RawMessage(`{"host":"A.test","port":80}`)}, "not normalised"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.ev.PolicyInput()
			if !errors.Is(err, ErrNotReplayable) || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("PolicyInput: %v, want not replayable: %s", err, tc.reason)
			}
		})
	}
	in, err := (&Event{Input: json.RawMessage(strings.Replace(good, `"port"`, `"candidates":["a.test"],"port"`, 1)), Erased: []string{"/result/x"}}).PolicyInput()
	if err != nil || in.Host != "a.test" {
		t.Errorf("PolicyInput with candidates and an erased result: %+v, %v", in, err)
	}
}

// TestDestIsLenient: where a connection went is read even when the rest of
// the input has another shape (headers as lists, a field of the future).
func TestDestIsLenient(t *testing.T) {
	ev := Event{Input: json.RawMessage(`{"host":"A.Test.","port":8443,"headers":{"accept":["*/*"]},"future":{"x":1},"attempt":{"labels":{"job":"ci"}}}`)}
	d, err := ev.Dest()
	if err != nil || d.Host != "a.test" || d.Port != 8443 || d.Labels["job"] != "ci" {
		t.Errorf("Dest = %+v, %v", d, err)
	}
	if _, err := ev.PolicyInput(); !errors.Is(err, ErrNotReplayable) {
		t.Errorf("PolicyInput of another shape: %v, want not replayable", err)
	}
	for _, in := range []string{`{"port":443}`, `{"host":"a.test","port":0}`, `{"host":"a b","port":1}`, `[1]`} {
		if _, err := (&Event{Input: json.RawMessage(in)}).Dest(); err == nil {
			t.Errorf("Dest(%s) has no error", in)
		}
	}
}
