package engine

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins/logs"
)

// TestEventJSONMatchesEncodingJSON: the decision log's encoder writes
// every event byte for byte as encoding/json does (OPA's format), over
// many random events: every Input field (filled by reflection, so a new
// field fails this until the encoder writes it), hostile strings, nested
// results, OPA's metrics, every optional EventV1 field.
func TestEventJSONMatchesEncodingJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fast := 0
	const n = 5000
	for i := range n {
		ev := randomEvent(rng)
		want, werr := json.Marshal(&ev)
		got, ok := appendEventJSON(nil, &ev)
		if !ok {
			if werr == nil && regateShaped(&ev) {
				t.Fatalf("event %d: not encoded, though encoding/json did: %s", i, want)
			}
			continue
		}
		fast++
		if werr != nil {
			t.Fatalf("event %d: encoded %s, but encoding/json failed: %v", i, got, werr)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d differs:\n got %s\nwant %s", i, got, want)
		}
		enc, err := encodeEvent([]byte("prefix"), &ev)
		if err != nil || !bytes.Equal(enc, append([]byte("prefix"), want...)) {
			t.Fatalf("event %d: encodeEvent appended %q, %v", i, enc, err)
		}
	}
	if fast < n/2 {
		t.Errorf("only %d of %d events took the encoder", fast, n)
	}
}

// TestEventJSONKnowsEveryEventField fails when OPA's EventV1 gains a
// field: appendEventJSON must write it (or refuse events that set it).
func TestEventJSONKnowsEveryEventField(t *testing.T) {
	var names []string
	ty := reflect.TypeFor[logs.EventV1]()
	for f := range ty.Fields() {
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); f.IsExported() && name != "-" {
			names = append(names, name)
		}
	}
	if strings.Join(names, ",") != strings.Join(eventFields, ",") {
		t.Errorf("EventV1's fields are\n%v\nappendEventJSON knows\n%v", names, eventFields)
	}
}

func TestEventJSONRefusesWhatEncodingJSONRefuses(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(1), json.Number("1.2.3"), json.Number("--1"), json.Number("1e")} {
		ev := logs.EventV1{DecisionID: "x"}
		var r any = map[string]any{"v": v}
		ev.Result = &r
		if _, ok := appendEventJSON(nil, &ev); ok {
			t.Errorf("%v encoded; encoding/json refuses it", v)
		}
		if _, err := encodeEvent(nil, &ev); err == nil {
			t.Errorf("%v: encodeEvent gave no error", v)
		}
	}
}

// regateShaped: an event as regate's decisions make them, which the
// encoder must take.
func regateShaped(ev *logs.EventV1) bool {
	return ev.Error == nil && len(ev.RuleLabels) == 0 && ev.RequestContext == nil && !hasOdd(ev.Result) && !hasOdd(ev.Input) && !hasOddMap(ev.Metrics) && !hasOddMap(ev.Custom) && !hasOddMap(ev.IntermediateResults) && !hasOdd(ev.MappedResult) && !hasOdd(ev.NDBuiltinCache)
}

func hasOdd(v *any) bool { return v != nil && odd(*v) }

func hasOddMap(m map[string]any) bool { return m != nil && odd(m) }

// odd: a value the encoder leaves to encoding/json.
func odd(v any) bool {
	switch v := v.(type) {
	case float32, int32:
		return true
	case map[string]any:
		for _, e := range v {
			if odd(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if odd(e) {
				return true
			}
		}
	}
	return false
}

var stringPieces = []string{
	"a", "Z", "0", " ", "é", "日本", "🙂", "<", ">", "&", `"`, `\`, "/", "\n", "\r", "\t", "\b", "\f",
	"\x00", "\x01", "\x1f", "\x7f", "\u2028", "\u2029", "\xff", "\xe2\x80", "\xed\xa0\x80", "[redacted]",
}

func randomString(rng *rand.Rand) string {
	var b strings.Builder
	for range rng.IntN(6) {
		b.WriteString(stringPieces[rng.IntN(len(stringPieces))])
	}
	return b.String()
}

func randomStrings(rng *rand.Rand) []string {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return []string{}
	}
	s := make([]string, 1+rng.IntN(3))
	for i := range s {
		s[i] = randomString(rng)
	}
	return s
}

func randomStringMap(rng *rand.Rand) map[string]string {
	switch rng.IntN(4) {
	case 0:
		return nil
	case 1:
		return map[string]string{}
	}
	m := map[string]string{}
	for range 1 + rng.IntN(4) {
		k := randomString(rng)
		if rng.IntN(3) == 0 {
			k = MaskedHeaders[rng.IntN(len(MaskedHeaders))]
		}
		m[k] = randomString(rng)
	}
	return m
}

var numbers = []any{
	0.0, -0.0, 1.5, -2.25, 1e-7, 1e-6, 123456789.125, 1e20, 1e21, 1.7976931348623157e308, 5e-324,
	int64(0), int64(-42), int64(math.MaxInt64), uint64(math.MaxUint64), 7, float32(1.1), int32(3),
	json.Number("0"), json.Number("-12.5e+3"), json.Number("1E9"), json.Number(""), json.Number("007"),
}

func randomValue(rng *rand.Rand, depth int) any {
	k := rng.IntN(8)
	if depth > 3 && k >= 5 {
		k = rng.IntN(5)
	}
	switch k {
	case 0:
		return nil
	case 1:
		return randomString(rng)
	case 2:
		return rng.IntN(2) == 0
	case 3, 4:
		return numbers[rng.IntN(len(numbers))]
	case 5:
		m := map[string]any{}
		for range rng.IntN(4) {
			m[randomString(rng)] = randomValue(rng, depth+1)
		}
		return m
	case 6:
		s := make([]any, rng.IntN(4))
		for i := range s {
			s[i] = randomValue(rng, depth+1)
		}
		return s
	}
	if rng.IntN(2) == 0 {
		return randomStrings(rng)
	}
	return randomStringMap(rng)
}

// fillRandom sets the fields of the struct v points to, by reflection.
func fillRandom(rng *rand.Rand, v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanSet() || rng.IntN(5) == 0 {
			continue
		}
		switch f.Kind() {
		case reflect.String:
			f.SetString(randomString(rng))
		case reflect.Int:
			f.SetInt(int64(rng.IntN(70000)) - 100)
		case reflect.Bool:
			f.SetBool(rng.IntN(2) == 0)
		case reflect.Pointer:
			p := reflect.New(f.Type().Elem())
			fillRandom(rng, p.Elem())
			f.Set(p)
		case reflect.Map:
			f.Set(reflect.ValueOf(randomStringMap(rng)))
		case reflect.Slice:
			f.Set(reflect.ValueOf(randomStrings(rng)))
		default:
			panic("fillRandom: add a case for " + f.Type().String())
		}
	}
}

func anyPtr(v any) *any { return &v }

func randomEvent(rng *rand.Rand) logs.EventV1 {
	maybe := func() bool { return rng.IntN(3) == 0 }
	ev := logs.EventV1{
		DecisionID: randomString(rng),
		Path:       DecisionPath,
		Timestamp:  time.Unix(rng.Int64N(4e9), rng.Int64N(1e9)).In(time.FixedZone("", rng.IntN(20)*1800-18000)),
	}
	if !maybe() {
		ev.Labels = map[string]string{"app": "regate", "id": randomString(rng), "version": "1.0"}
	}
	var in Input
	fillRandom(rng, reflect.ValueOf(&in).Elem())
	switch rng.IntN(4) {
	case 0:
		ev.Input = anyPtr(randomValue(rng, 0))
	case 1:
	default:
		ev.Input = anyPtr(logInput{&in})
	}
	if !maybe() {
		ev.Result = anyPtr(map[string]any{"allow": rng.IntN(2) == 0, "reason": randomString(rng), "rule": randomString(rng)})
	} else if maybe() {
		ev.Result = anyPtr(randomValue(rng, 0))
	}
	if !maybe() {
		ev.Metrics = map[string]any{"timer_rego_query_eval_ns": rng.Int64N(1e6), "counter_x": uint64(rng.IntN(9))}
		if maybe() {
			ev.Metrics["histogram"] = map[string]any{"mean": rng.Float64() * 1e3, "count": int64(3)}
		}
	}
	if maybe() {
		ev.Bundles = map[string]logs.BundleInfoV1{randomString(rng): {Revision: randomString(rng)}, "b": {}}
	}
	for _, s := range []*string{&ev.BatchDecisionID, &ev.TraceID, &ev.SpanID, &ev.Revision, &ev.Query, &ev.RequestedBy} {
		if maybe() {
			*s = randomString(rng)
		}
	}
	if maybe() {
		ev.Erased, ev.Masked = randomStrings(rng), randomStrings(rng)
	}
	if maybe() {
		ev.NDBuiltinCache = anyPtr(randomValue(rng, 0))
		ev.MappedResult = anyPtr(randomValue(rng, 0))
	}
	if maybe() {
		ev.Custom, _ = randomValue(rng, 4).(map[string]any)
		ev.IntermediateResults = map[string]any{randomString(rng): randomValue(rng, 0)}
	}
	if maybe() {
		ev.RequestID = rng.Uint64()
	}
	switch rng.IntN(40) {
	case 0:
		ev.Error = &json.UnsupportedValueError{Str: "x"}
	case 1:
		ev.RuleLabels = []map[string]any{{"a": 1}}
	case 2:
		ev.RequestContext = &logs.RequestContext{HTTPRequest: &logs.HTTPRequestContext{Headers: map[string][]string{"a": {"b"}}}}
	}
	return ev
}

// BenchmarkEventJSON: one plain request's decision-log event, as regate
// writes it and as encoding/json did.
func BenchmarkEventJSON(b *testing.B) {
	in := Input{Host: "up.test", Port: 18080, Scheme: SchemeHTTP, Method: "GET", Path: "/",
		Client: &Client{Addr: "127.0.0.1:59286", Listener: "http"}, Headers: map[string]string{"user-agent": "curl/8", "accept": "*/*"}}
	ev := logs.EventV1{
		Labels:     map[string]string{"app": "regate", "id": "20c68134-7c7b-4a13-ba1f-5cb77455b94c", "regate_version": "devel", "version": "1.22.3"},
		DecisionID: "988e9ef5-6c89-4f4d-b1c4-6efbd14ffbf8", Path: DecisionPath,
		Input:     anyPtr(logInput{&in}),
		Result:    anyPtr(map[string]any{"allow": true, "reason": `allowed by pattern "up.test"`, "rule": "allow:up.test"}),
		Timestamp: time.Now(), Metrics: map[string]any{"timer_rego_external_resolve_ns": int64(558), "timer_rego_query_eval_ns": int64(629739)},
	}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(&ev); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("appendEventJSON", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			var err error
			if buf, err = encodeEvent(buf[:0], &ev); err != nil {
				b.Fatal(err)
			}
		}
	})
}
