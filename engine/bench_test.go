package engine

import (
	"context"
	"fmt"
	"io"
	"testing"

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

func benchEngine(b *testing.B, n int, log io.Writer) *Engine {
	b.Helper()
	e, err := New(Config{Default: policies.FS, Allow: patterns(n), Deny: []string{"evil.test", "*.evil.test"}, DecisionLog: log, LogQueue: 1 << 16})
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
// 10 and 10,000 patterns, with and without a decision-log sink.
func BenchmarkDecide(b *testing.B) {
	hosts := []string{"registry.npmjs.org", "a.b.evil.test", "unknown.example.com"}
	for _, n := range []int{10, 10000} {
		for _, sink := range []bool{false, true} {
			b.Run(fmt.Sprintf("patterns=%d/log=%v", n, sink), func(b *testing.B) {
				var w io.Writer
				if sink {
					w = io.Discard
				}
				e := benchEngine(b, n, w)
				ctx := context.Background()
				b.ResetTimer()
				for i := 0; b.Loop(); i++ {
					in := Input{Host: hosts[i%len(hosts)], Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect}
					if _, err := e.Decide(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
