package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/regate/regate/policies"
)

func TestCachePlan(t *testing.T) {
	tests := []struct {
		name          string
		policy        string
		deterministic bool
		all           bool
		fields        []string
	}{
		{"fields", "package p\n\nx if input.host == input.scheme\n", true, false, []string{"host", "scheme"}},
		{"nested field", "package p\n\nx if input.client.addr == \"a\"\n", true, false, []string{"client"}},
		{"bare input", "package p\n\nx := input\n", true, true, nil},
		{"computed key", "package p\n\nx := input[k] if k := \"host\"\n", true, true, nil},
		{"input passed to function", "package p\n\nf(i) := i.host\n\nx := f(input)\n", true, true, nil},
		{"time", "package p\n\nx if time.now_ns() > 0\n", false, false, nil},
		{"http.send", "package p\n\nx := http.send({\"method\": \"GET\", \"url\": \"http://x\"})\n", false, false, nil},
		{"rand", "package p\n\nx := rand.intn(\"a\", 10)\n", false, false, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := ast.MustCompileModules(map[string]string{"p.rego": tc.policy})
			det, f := cachePlan(c)
			if det != tc.deterministic || f.all != tc.all {
				t.Fatalf("cachePlan = %v, all=%v; want %v, all=%v", det, f.all, tc.deterministic, tc.all)
			}
			for _, name := range tc.fields {
				if !f.has(name) {
					t.Fatalf("field %q not in the key", name)
				}
			}
		})
	}
}

// TestCacheKeyedByWhatThePolicyReads: a policy that reads input.client gets
// a decision per client address, never another client's.
func TestCacheKeyedByWhatThePolicyReads(t *testing.T) {
	policy := "package regate.network\n\ndefault decision := {\"allow\": false, \"reason\": \"no\"}\n\n" +
		"decision := {\"allow\": true, \"reason\": \"yes\"} if input.client.addr == \"127.0.0.1:1\"\n"
	e := startEngine(t, Config{Default: simpleFS(policy)})
	for range 3 {
		for _, tc := range []struct {
			addr  string
			allow bool
		}{{"127.0.0.1:1", true}, {"127.0.0.1:2", false}} {
			d, err := e.Decide(context.Background(), Input{Host: "a.test", Port: 443, Client: &Client{Addr: tc.addr, Listener: "http"}})
			if err != nil || d.Allow != tc.allow {
				t.Fatalf("client %s: %+v %v, want allow=%v", tc.addr, d, err, tc.allow)
			}
		}
	}
}

// TestCacheDroppedOnDataChange: a data write (what the admin API and remote
// bundles do) changes the very next decision.
func TestCacheDroppedOnDataChange(t *testing.T) {
	e := startEngine(t, Config{Default: simpleFS(simplePolicy), Allow: []string{"a.test"}})
	for range 3 {
		if !decideHost(t, e, "a.test").Allow {
			t.Fatal("allowed host denied")
		}
	}
	ctx := context.Background()
	must(t, storage.WriteOne(ctx, e.Store(), storage.ReplaceOp, storage.MustParsePath("/regate/allow"), map[string]any{"b.test": true}))
	if decideHost(t, e, "a.test").Allow {
		t.Fatal("cached allow survived a data change")
	}
	if !decideHost(t, e, "b.test").Allow {
		t.Fatal("new data not applied")
	}
}

// TestCacheSameDecisionsAsEvaluation is a differential test: an engine with
// the cache and one without decide a random stream of repeating inputs
// identically, on the embedded default policy.
func TestCacheSameDecisionsAsEvaluation(t *testing.T) {
	cfg := Config{Default: policies.FS, Allow: []string{"**.github.com", "pypi.org:443", "10.0.0.0/8"}, Deny: []string{"evil.github.com"}, Data: map[string]any{"regate": map[string]any{"methods": []any{"GET"}}},
		DecisionTimeout: time.Minute} // a timeout is a deny; this compares decisions, not speed
	cached := startEngine(t, cfg)
	cfg.DisableCache = true
	plain := startEngine(t, cfg)
	hosts := []string{"github.com", "api.github.com", "evil.github.com", "pypi.org", "10.1.2.3", "11.0.0.1", "example.com"}
	schemes := []string{SchemeHTTP, SchemeHTTPS, SchemeSOCKS5}
	methods := []string{"GET", "POST", MethodConnect}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		in := Input{
			Host: hosts[r.IntN(len(hosts))], Port: []int{443, 80, 22}[r.IntN(3)],
			Scheme: schemes[r.IntN(len(schemes))], Method: methods[r.IntN(len(methods))],
			AttemptID: fmt.Sprintf("a%d", r.IntN(2)),
		}
		if r.IntN(4) == 0 {
			in.Attempt = &Attempt{Allow: []string{"example.com"}}
		}
		a, errA := cached.Decide(context.Background(), in)
		b, errB := plain.Decide(context.Background(), in)
		if errA != nil || errB != nil || a.Allow != b.Allow || a.Reason != b.Reason || a.Rule != b.Rule {
			t.Fatalf("input %d %+v: cached %+v (%v), evaluated %+v (%v)", i, in, a, errA, b, errB)
		}
	}
}

// TestCacheKeyCoversEveryInputField guards the cache against a field added
// to Input later but not to the key: changing any field of the input, or any
// field of its attempt, TLS and client objects, must change the key that
// reads every field.
func TestCacheKeyCoversEveryInputField(t *testing.T) {
	all := inputFields{all: true}
	typ := reflect.TypeOf(Input{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		base := Input{Host: "a.test", Port: 443, Scheme: "https", Method: "CONNECT"}
		v := base
		if !changeValue(reflect.ValueOf(&v).Elem().Field(i)) {
			t.Fatalf("Input.%s of kind %s: teach this test and cacheKey about it", f.Name, f.Type.Kind())
		}
		if all.cacheKey(&v) == all.cacheKey(&base) {
			t.Errorf("changing Input.%s does not change the cache key", f.Name)
		}
		if f.Type.Kind() != reflect.Pointer {
			continue
		}
		reflect.ValueOf(&base).Elem().Field(i).Set(reflect.New(f.Type.Elem()))
		for j := range f.Type.Elem().NumField() {
			v := base
			elem := reflect.New(f.Type.Elem())
			reflect.ValueOf(&v).Elem().Field(i).Set(elem)
			if !changeValue(elem.Elem().Field(j)) {
				t.Fatalf("Input.%s.%s: teach this test and cacheKey about it", f.Name, f.Type.Elem().Field(j).Name)
			}
			if all.cacheKey(&v) == all.cacheKey(&base) {
				t.Errorf("changing Input.%s.%s does not change the cache key", f.Name, f.Type.Elem().Field(j).Name)
			}
		}
	}
}

// changeValue sets v to a value different from its zero value (a pointer to
// a struct gets every field changed); false for a kind it does not know.
func changeValue(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.String:
		v.SetString(v.String() + "x")
	case reflect.Int:
		v.SetInt(v.Int() + 1)
	case reflect.Bool:
		v.SetBool(!v.Bool())
	case reflect.Map:
		v.Set(reflect.ValueOf(map[string]string{"k": "v"}))
	case reflect.Slice:
		v.Set(reflect.ValueOf([]string{"x"}))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		for j := range v.Elem().NumField() {
			if !changeValue(v.Elem().Field(j)) {
				return false
			}
		}
	default:
		return false
	}
	return true
}

// slowPolicy is deterministic and takes milliseconds, so that decisions
// asked together are evaluated together.
const slowPolicy = `package regate.network

default decision := {"allow": false, "reason": "no"}

decision := {"allow": true, "reason": "yes"} if {
	count([x | some x in numbers.range(1, 20000); x % 7 == 0]) > 0
	data.regate.allow[input.host]
}
`

// TestCacheRefillEvaluatesOncePerKey: after a store commit empties the
// cache, 16 clients asking the same question at once cause one evaluation;
// the others wait for it and get its decision.
func TestCacheRefillEvaluatesOncePerKey(t *testing.T) {
	e := startEngine(t, Config{Default: simpleFS(slowPolicy), Allow: []string{"a.test"}, DecisionTimeout: time.Minute})
	ctx := context.Background()
	for round := range 3 {
		must(t, storage.WriteOne(ctx, e.Store(), storage.ReplaceOp, storage.MustParsePath("/regate/allow"),
			map[string]any{"a.test": true, fmt.Sprintf("r%d.test", round): true}))
		misses, hits := testutil.ToFloat64(e.metrics.cacheMisses), testutil.ToFloat64(e.metrics.cacheHits)
		start := make(chan struct{})
		var wg sync.WaitGroup
		allowed := make(chan bool, 16)
		for range 16 {
			wg.Go(func() {
				<-start
				d, err := e.Decide(ctx, Input{Host: "a.test", Port: 443, Scheme: SchemeHTTPS, Method: MethodConnect})
				if err != nil || !d.Allow {
					t.Errorf("decision %+v, %v", d, err)
				}
				allowed <- err == nil && d.Allow
			})
		}
		close(start)
		wg.Wait()
		close(allowed)
		for ok := range allowed {
			if !ok {
				t.Fatal("a decision waiting for another's evaluation was not its allow")
			}
		}
		if got := testutil.ToFloat64(e.metrics.cacheMisses) - misses; got != 1 {
			t.Fatalf("round %d: %v evaluations for 16 identical decisions after a commit, want 1", round, got)
		}
		if got := testutil.ToFloat64(e.metrics.cacheHits) - hits; got != 15 {
			t.Fatalf("round %d: %v decisions without an evaluation of their own, want 15", round, got)
		}
	}
}

// TestPolicyInputKeepsWhatThePolicyReads: the input a policy evaluates
// leaves out what it never reads, and never what it reads: for every field
// of Input (and input.candidates), a policy reading only that field gets
// exactly it.
func TestPolicyInputKeepsWhatThePolicyReads(t *testing.T) {
	full := Input{}
	fv := reflect.ValueOf(&full).Elem()
	names := []string{"candidates"}
	for i := range fv.NumField() {
		if !changeValue(fv.Field(i)) {
			t.Fatalf("Input.%s: teach this test about it", fv.Type().Field(i).Name)
		}
		names = append(names, strings.Split(fv.Type().Field(i).Tag.Get("json"), ",")[0])
	}
	for _, name := range names {
		c := ast.MustCompileModules(map[string]string{"p.rego": "package p\n\nx if input." + name + "\n"})
		_, f := cachePlan(c)
		obj := full.policyAST(f).(ast.Object)
		if obj.Len() != 1 || obj.Get(ast.StringTerm(name)) == nil {
			t.Errorf("a policy reading input.%s gets the input keys %v", name, obj.Keys())
		}
	}
}
