package engine

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// floorPolicy is the least a policy can do to decide a destination: one
// lookup of the host in an object of patterns, an object as the answer.
const floorPolicy = `package floor

default decision := {"allow": false, "reason": "no rule allows the destination"}

decision := {"allow": true, "reason": "allowed"} if data.allow[input.host]
`

// customPolicy decides plain HTTP by host, path and the attempt's labels:
// every new path is a decision-cache miss.
const customPolicy = `package regate.network

default decision := {"allow": false, "reason": "no rule allows the request"}

decision := {"allow": true, "reason": "allowed"} if {
	data.regate.allow[input.host]
	startswith(input.path, "/api/")
	input.attempt.labels.team == "build"
}
`

// opaFloor is a bare OPA prepared query over its own in-memory store: what
// OPA itself needs for a decision, without regate around it.
type opaFloor struct {
	pq rego.PreparedEvalQuery
}

func newOPAFloor(b *testing.B, query, module string, data map[string]any) *opaFloor {
	b.Helper()
	pq, err := rego.New(
		rego.Query(query),
		rego.Module("floor.rego", module),
		rego.Store(inmem.NewFromObject(data)),
	).PrepareForEval(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	return &opaFloor{pq: pq}
}

// decide builds the input as a caller of OPA would, as an AST value, and
// evaluates the query.
func (f *opaFloor) decide(ctx context.Context, in *Input) (bool, error) {
	terms := [][2]*ast.Term{
		ast.Item(ast.StringTerm("host"), ast.StringTerm(in.Host)),
		ast.Item(ast.StringTerm("port"), ast.IntNumberTerm(in.Port)),
		ast.Item(ast.StringTerm("scheme"), ast.StringTerm(in.Scheme)),
		ast.Item(ast.StringTerm("method"), ast.StringTerm(in.Method)),
	}
	if in.Path != "" {
		terms = append(terms, ast.Item(ast.StringTerm("path"), ast.StringTerm(in.Path)))
	}
	if in.Attempt != nil {
		labels := make([][2]*ast.Term, 0, len(in.Attempt.Labels))
		for k, v := range in.Attempt.Labels {
			labels = append(labels, ast.Item(ast.StringTerm(k), ast.StringTerm(v)))
		}
		terms = append(terms, ast.Item(ast.StringTerm("attempt"),
			ast.ObjectTerm(ast.Item(ast.StringTerm("labels"), ast.ObjectTerm(labels...)))))
	}
	rs, err := f.pq.Eval(ctx, rego.EvalParsedInput(ast.NewObject(terms...)))
	if err != nil {
		return false, err
	}
	if len(rs) == 0 {
		return false, fmt.Errorf("undefined decision")
	}
	allow, _ := rs[0].Expressions[0].Value.(map[string]any)["allow"].(bool)
	return allow, nil
}

// side is one of the two deciders a cost benchmark compares: its per-call
// durations and the heap allocations of its batches.
type side struct {
	took   []time.Duration
	allocs uint64
	n      int
}

func (s *side) report(b *testing.B, prefix string) {
	b.Helper()
	slices.Sort(s.took)
	b.ReportMetric(float64(mean(s.took).Nanoseconds()), prefix+"ns/decision")
	b.ReportMetric(float64(s.took[len(s.took)/2].Nanoseconds()), prefix+"p50-ns")
	b.ReportMetric(float64(s.took[len(s.took)*99/100].Nanoseconds()), prefix+"p99-ns")
	b.ReportMetric(float64(s.allocs)/float64(s.n), prefix+"allocs/decision")
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// costBatch is how many decisions one side makes before the other takes
// its turn: long enough that reading the allocation counter between
// batches costs little, short enough that both sides see the same machine.
const costBatch = 64

// compareCost runs regate's decisions and the floor's in interleaved
// batches — one op is a batch of each, so every run measures both — and
// reports each side's mean, p50, p99 and heap allocations per decision
// (regate's include its decision-log event, delivered before the floor's
// turn), and the ratios regate/floor of the means and of the p99s.
func compareCost(b *testing.B, e *Engine, inputs func(i int) Input, floor *opaFloor) {
	b.Helper()
	ctx := context.Background()
	var sides [2]side // regate, floor
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	before := ms.Mallocs
	for i := 0; b.Loop(); i++ {
		for cur := range sides {
			s := &sides[cur]
			for j := range costBatch {
				in := inputs(i*costBatch + j)
				t0 := time.Now()
				var err error
				if cur == 0 {
					_, err = e.Decide(ctx, in)
				} else {
					_, err = floor.decide(ctx, &in)
				}
				if err != nil {
					b.Fatal(err)
				}
				s.took = append(s.took, time.Since(t0))
				s.n++
			}
			b.StopTimer()
			if cur == 0 {
				e.Flush(ctx)
			}
			runtime.ReadMemStats(&ms)
			s.allocs += ms.Mallocs - before
			before = ms.Mallocs
			b.StartTimer()
		}
	}
	sides[0].report(b, "regate-")
	sides[1].report(b, "floor-")
	mine, theirs := sides[0].took, sides[1].took
	b.ReportMetric(float64(mean(mine))/float64(mean(theirs)), "ratio")
	b.ReportMetric(float64(mine[len(mine)*99/100])/float64(theirs[len(theirs)*99/100]), "p99-ratio")
}

// BenchmarkDecideCost compares one evaluated decision of regate (no
// decision cache) with a bare OPA prepared query deciding the same input,
// in one run (README, Performance):
//
//   - policy=default: the embedded default policy against the floor,
//     data.allow[input.host] over the same number of patterns;
//   - policy=custom: a policy reading input.path and input.attempt.labels,
//     with the cache on and a new path every request (plain HTTP's cache
//     miss), against the same policy and data in bare OPA.
func BenchmarkDecideCost(b *testing.B) {
	hosts := []string{"registry.npmjs.org", "a.b.evil.test", "unknown.example.com", "api.github.com", "files.pythonhosted.org"}
	for _, n := range []int{10, 10000} {
		allow := map[string]any{}
		for _, p := range patterns(n) {
			allow[p] = true
		}
		b.Run(fmt.Sprintf("patterns=%d/policy=default", n), func(b *testing.B) {
			e := benchEngine(b, n, nil, true)
			floor := newOPAFloor(b, "data.floor.decision", floorPolicy, map[string]any{"allow": allow})
			compareCost(b, e, func(i int) Input {
				return Input{Host: hosts[i%len(hosts)], Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect}
			}, floor)
		})
		b.Run(fmt.Sprintf("patterns=%d/policy=custom", n), func(b *testing.B) {
			dir := b.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "custom.rego"), []byte(customPolicy), 0o644); err != nil {
				b.Fatal(err)
			}
			e, err := New(Config{Policies: []string{dir}, Allow: patterns(n)})
			if err != nil {
				b.Fatal(err)
			}
			if err := e.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { e.Stop(context.Background()) })
			floor := newOPAFloor(b, "data.regate.network.decision", customPolicy,
				map[string]any{"regate": map[string]any{"allow": allow}})
			attempt := &Attempt{Labels: map[string]string{"team": "build", "repo": "regate"}}
			compareCost(b, e, func(i int) Input {
				return Input{Host: hosts[i%len(hosts)], Port: 80, Scheme: SchemeHTTP, Method: "GET",
					Path: fmt.Sprintf("/api/v1/items/%d", i), AttemptID: "a1", Attempt: attempt}
			}, floor)
		})
	}
}

// BenchmarkDecideAfterWrite measures what a data write (what the admin
// API's PUT /v1/data does, and every bundle activation) costs decisions
// under load: 16 clients decide, without pause, 64 destinations of the
// default policy with 10,000 patterns and the decision cache on, for four
// one-second windows; the second and the fourth start with a write, which
// empties the cache. It reports the p99 of the windows without a write and
// with one, their ratio, the evaluations each write caused (one per
// destination when concurrent misses share an evaluation) and the
// decisions that failed closed (an evaluation past the decision timeout).
func BenchmarkDecideAfterWrite(b *testing.B) {
	const clients, length = 16, time.Second
	e := benchEngine(b, 10000, nil, false)
	hosts := make([]string, 64)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("h%d.sub%d.example.net", i, 4*i+5) // allowed by *.subN.example.net
	}
	ctx := context.Background()
	for b.Loop() {
		var steady, written window
		for w := range 4 {
			if w%2 == 0 {
				steady.run(b, e, clients, length, hosts)
				continue
			}
			if err := storage.WriteOne(ctx, e.Store(), storage.AddOp, storage.MustParsePath(fmt.Sprintf("/regate/allow/w%d.test", w)), true); err != nil {
				b.Fatal(err)
			}
			written.run(b, e, clients, length, hosts)
		}
		b.ReportMetric(steady.p99(), "steady-p99-ns")
		b.ReportMetric(written.p99(), "write-p99-ns")
		b.ReportMetric(written.p99()/steady.p99(), "p99-ratio")
		b.ReportMetric(written.evaluations/2, "evaluations/write")
		b.ReportMetric(float64(steady.failed+written.failed), "failed-closed")
	}
}

// window is what the decisions of one or more windows took.
type window struct {
	took        []time.Duration
	evaluations float64
	failed      int
}

func (w *window) p99() float64 {
	slices.Sort(w.took)
	return float64(w.took[len(w.took)*99/100].Nanoseconds())
}

// run has clients goroutines decide hosts in turn, all in the same order
// (a new commit finds them asking the same questions at once), for d and
// adds their
// durations, the evaluations and the decisions that failed closed to w.
func (w *window) run(b *testing.B, e *Engine, clients int, d time.Duration, hosts []string) {
	b.Helper()
	hits := testutil.ToFloat64(e.metrics.cacheHits)
	stop := time.Now().Add(d)
	took := make([][]time.Duration, clients)
	failed := make([]int, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				in := Input{Host: hosts[i%len(hosts)], Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect}
				t0 := time.Now()
				d, err := e.Decide(context.Background(), in)
				took[c] = append(took[c], time.Since(t0))
				switch {
				case err != nil:
					failed[c]++
				case !d.Allow:
					b.Errorf("decision %+v", d)
					return
				}
			}
		})
	}
	wg.Wait()
	all := slices.Concat(took...)
	w.took = append(w.took, all...)
	// Every decision not served by the cache or a shared evaluation.
	w.evaluations += float64(len(all)) - (testutil.ToFloat64(e.metrics.cacheHits) - hits)
	for _, n := range failed {
		w.failed += n
	}
}
