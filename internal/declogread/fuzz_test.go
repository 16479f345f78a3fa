package declogread

import (
	"bytes"
	"strings"
	"testing"
)

const (
	fuzzFirst = `{"decision_id":"first","path":"regate/network/decision","input":{"host":"a.test","port":443},"result":{"allow":false,"rule":"default"}}`
	fuzzLast  = `{"decision_id":"last","path":"regate/network/decision","input":{"host":"b.test","port":443},"result":{"allow":false,"rule":"default"}}`
)

// FuzzRead: whatever one line of a JSON-lines log holds, reading never
// panics, the lines around it are read unchanged, and the line is either
// read as events or reported as a problem with its line number — never
// silently dropped. Any document at all reads without a panic.
func FuzzRead(f *testing.F) {
	for _, s := range []string{
		``, `{`, `[`, `{}`, `[]`, `null`, `42`, `"x"`, `{"decision_id":""}`, `{"decision_id":"x"}`,
		`{"result":[]}`, `{"result":[{"decision_id":"y"}]}`, `{"result":[1]}`, `[{"decision_id":"z"},2]`,
		`{"decision_id":"x","timestamp":"not a time"}`, `{"decision_id":"x","input":{"host":7}}`,
		`{"decision_id":"x","result":{"allow":true,"audit":true}}`, "\x1f\x8b\x08", "{\n\"result\": [\n",
		fuzzFirst,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		_, _, _ = Read(strings.NewReader(line), "any")
		line = strings.NewReplacer("\n", " ", "\r", " ").Replace(line)
		if strings.TrimSpace(line) == "" {
			return
		}
		doc := fuzzFirst + "\n" + line + "\n" + fuzzLast + "\n"
		evs, probs, err := Read(strings.NewReader(doc), "d.jsonl")
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		if len(evs) < 2 || evs[0].DecisionID != "first" || evs[len(evs)-1].DecisionID != "last" {
			t.Fatalf("the lines around %q were not read: %+v", line, evs)
		}
		if evs[0].Source != "d.jsonl:1" || evs[len(evs)-1].Source != "d.jsonl:3" {
			t.Fatalf("sources %s, %s", evs[0].Source, evs[len(evs)-1].Source)
		}
		middle := len(evs) - 2
		for _, p := range probs {
			if !strings.HasPrefix(p.Source, "d.jsonl:2") {
				t.Fatalf("problem %v is not on line 2", p)
			}
		}
		if middle == 0 && len(probs) == 0 && !isEmptyBatch(line) {
			t.Fatalf("line %q yielded neither an event nor a problem", line)
		}
		for _, ev := range evs {
			if ev.DecisionID == "" {
				t.Fatalf("an event without a decision id was read: %+v", ev)
			}
			_, _ = ev.Dest()
			_, _ = ev.PolicyInput()
		}
	})
}

// isEmptyBatch reports whether line is an empty array or an admin answer
// with no events: nothing to read, nothing wrong.
func isEmptyBatch(line string) bool {
	evs, probs, err := Read(strings.NewReader(line), "x")
	if err != nil || len(evs) > 0 || len(probs) > 0 {
		return false
	}
	t := bytes.TrimSpace([]byte(line))
	return len(t) > 0 && (t[0] == '[' || t[0] == '{')
}
