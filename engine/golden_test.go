package engine

import (
	"context"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regate/regate/policies"
)

var update = flag.Bool("update", false, "rewrite the golden decision files")

// goldenCase is one file of testdata/golden: an input and the data for the
// embedded default policy.
type goldenCase struct {
	Input Input          `json:"input"`
	Allow []string       `json:"allow"`
	Deny  []string       `json:"deny"`
	Data  map[string]any `json:"data"`
}

type goldenDecision struct {
	Allow  bool   `json:"allow"`
	Reason string `json:"reason"`
	Rule   string `json:"rule"`
}

// TestGoldenDecisions runs each testdata/golden/*.input.json through the
// embedded default policy and compares the decision with the .golden.json
// beside it; `go test ./engine -run Golden -update` rewrites them.
func TestGoldenDecisions(t *testing.T) {
	files, err := filepath.Glob("testdata/golden/*.input.json")
	must(t, err)
	if len(files) == 0 {
		t.Fatal("no golden inputs")
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".input.json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			must(t, err)
			var gc goldenCase
			must(t, json.Unmarshal(raw, &gc))
			e := startEngine(t, Config{Default: policies.FS, Allow: gc.Allow, Deny: gc.Deny, Data: gc.Data})
			d, err := e.Decide(context.Background(), gc.Input)
			must(t, err)
			got := goldenDecision{Allow: d.Allow, Reason: d.Reason, Rule: d.Rule}
			path := strings.TrimSuffix(file, ".input.json") + ".golden.json"
			if *update {
				b, _ := json.MarshalIndent(got, "", "  ")
				must(t, os.WriteFile(path, append(b, '\n'), 0o644))
				return
			}
			b, err := os.ReadFile(path)
			must(t, err)
			var want goldenDecision
			must(t, json.Unmarshal(b, &want))
			if got != want {
				t.Fatalf("decision %+v, golden %+v", got, want)
			}
		})
	}
}

func policiesFS() fs.FS { return policies.FS }
