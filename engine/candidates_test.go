package engine

import (
	"context"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/regate/regate/policies"
)

// regoCandidates prepares the Rego library's candidates function, the
// reference that Candidates must reproduce.
func regoCandidates(t testing.TB) func(host string, port int) []string {
	t.Helper()
	res, err := loader.NewFileLoader().WithFS(policies.FS).WithRegoVersion(ast.RegoV1).Filtered([]string{"lib"}, skipTests)
	if err != nil {
		t.Fatal(err)
	}
	opts := []func(*rego.Rego){rego.Query("data.regate.lib.patterns.candidates(input.host, input.port)")}
	for _, m := range res.Modules {
		opts = append(opts, rego.ParsedModule(m.Parsed))
	}
	pq, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return func(host string, port int) []string {
		rs, err := pq.Eval(context.Background(), rego.EvalInput(map[string]any{"host": host, "port": port}))
		if err != nil || len(rs) == 0 {
			t.Fatalf("rego candidates(%q, %d): %v %v", host, port, rs, err)
		}
		var out []string
		for _, v := range rs[0].Expressions[0].Value.([]any) {
			out = append(out, v.(string))
		}
		return out
	}
}

// TestCandidatesMatchRego is the differential test behind input.candidates:
// for every kind of host, Go and the Rego library produce the same array.
func TestCandidatesMatchRego(t *testing.T) {
	ref := regoCandidates(t)
	hosts := []string{
		"example.com", "a.b.c.example.com", "localhost", "xn--bcher-kva.example", "_acme.example.com",
		"127.0.0.1", "10.1.2.3", "0.0.0.0", "255.255.255.255", "169.254.169.254",
		"::1", "2001:db8::1", "fe80::1", "::", "2001:db8:85a3::8a2e:370:7334", "::ffff:127.0.0.1",
	}
	for _, h := range hosts {
		for _, port := range []int{443, 22, 8080} {
			got, want := Candidates(h, port), ref(h, port)
			if !slices.Equal(got, want) {
				t.Fatalf("Candidates(%q, %d) =\n%q\nRego:\n%q", h, port, got, want)
			}
		}
	}
}

// FuzzCandidatesMatchRego extends the differential test to any host the
// normaliser accepts.
func FuzzCandidatesMatchRego(f *testing.F) {
	for _, s := range []string{"example.com", "10.0.0.1", "2001:db8::1", "a.b", "0x7f.1"} {
		f.Add(s, 443)
	}
	ref := regoCandidates(f)
	f.Fuzz(func(t *testing.T, raw string, port int) {
		host, _, err := NormalizeHost(raw)
		if err != nil || port < 0 || port > 65535 {
			return
		}
		if got, want := Candidates(host, port), ref(host, port); !slices.Equal(got, want) {
			t.Fatalf("Candidates(%q, %d) =\n%q\nRego:\n%q", host, port, got, want)
		}
	})
}
