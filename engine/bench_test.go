package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/regate/regate/policies"
)

// patterns returns n patterns of every kind, none matching the benchmark
// hosts except the ones named.
func patterns(n int) []string {
	out := []string{"api.github.com", "**.npmjs.org", "*.pythonhosted.org", "github.com:22"}
	for i := len(out); i < n; i++ {
		switch i % 4 {
		case 0:
			out = append(out, fmt.Sprintf("host%d.example.com", i))
		case 1:
			out = append(out, fmt.Sprintf("*.sub%d.example.net", i))
		case 2:
			out = append(out, fmt.Sprintf("**.d%d.example.org:443", i))
		default:
			out = append(out, fmt.Sprintf("10.%d.%d.0/24", i/256%256, i%256))
		}
	}
	return out
}

func benchEngine(b *testing.B, n int, log io.Writer, noCache bool) *Engine {
	b.Helper()
	e, err := New(Config{Default: policies.FS, Allow: patterns(n), Deny: []string{"evil.test", "*.evil.test"},
		DecisionLog: log, LogQueue: 1 << 16, DisableCache: noCache})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Stop(context.Background()) })
	return e
}

// BenchmarkDecide measures one decision of the embedded default policy at
// 10 and 10,000 patterns, with and without a decision-log sink, with the
// decision cache on (a realistic mix: a few destinations, repeated) and off
// (every decision evaluated). It reports p50 and p99 per decision.
func BenchmarkDecide(b *testing.B) {
	hosts := []string{"registry.npmjs.org", "a.b.evil.test", "unknown.example.com", "api.github.com", "files.pythonhosted.org"}
	for _, n := range []int{10, 10000} {
		for _, sink := range []bool{false, true} {
			for _, cache := range []bool{true, false} {
				b.Run(fmt.Sprintf("patterns=%d/log=%v/cache=%v", n, sink, cache), func(b *testing.B) {
					var w io.Writer
					if sink {
						w = io.Discard
					}
					e := benchEngine(b, n, w, !cache)
					ctx := context.Background()
					var took []time.Duration
					for i := 0; b.Loop(); i++ {
						in := Input{Host: hosts[i%len(hosts)], Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect}
						t0 := time.Now()
						if _, err := e.Decide(ctx, in); err != nil {
							b.Fatal(err)
						}
						took = append(took, time.Since(t0))
					}
					slices.Sort(took)
					b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "p50-ns")
					b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds()), "p99-ns")
				})
			}
		}
	}
}

// BenchmarkReload times a reload of a 10,000-pattern data file.
func BenchmarkReload(b *testing.B) {
	dir := b.TempDir()
	allow := map[string]any{}
	for _, p := range patterns(10000) {
		allow[p] = true
	}
	data, _ := json.Marshal(map[string]any{"regate": map[string]any{"allow": allow}})
	if err := os.WriteFile(filepath.Join(dir, "data.json"), data, 0o644); err != nil {
		b.Fatal(err)
	}
	lib, _ := policies.FS.ReadFile("network.rego")
	if err := os.WriteFile(filepath.Join(dir, "network.rego"), lib, 0o644); err != nil {
		b.Fatal(err)
	}
	e, err := New(Config{Policies: []string{dir, "../policies/lib"}})
	if err != nil {
		b.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Stop(context.Background()) })
	for b.Loop() {
		if err := e.Reload(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}
