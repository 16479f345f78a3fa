package suggest

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/enginetest"
	"github.com/regate/regate/policies"
)

func obs(targets ...string) []Observation {
	var out []Observation
	for _, s := range targets {
		t, err := ParseTarget(s)
		if err != nil {
			panic(err)
		}
		out = append(out, Observation{Target: t, HostIsIP: isIP(t.Host), AttemptID: "a1", Labels: map[string]string{"job": "build"}, Rule: "default"})
	}
	return out
}

func keep(targets ...string) []Target {
	var out []Target
	for _, s := range targets {
		t, err := ParseTarget(s)
		if err != nil {
			panic(err)
		}
		out = append(out, t)
	}
	return out
}

func TestSuggest(t *testing.T) {
	for _, tc := range []struct {
		name string
		obs  []Observation
		opts Options
		want string // patterns, space-separated
	}{
		{"one host", obs("a.test:443"), Options{}, "a.test"},
		{"80 and 443 are one pattern", obs("a.test:80", "a.test:443"), Options{}, "a.test"},
		{"other ports keep theirs", obs("a.test:8080", "a.test:443"), Options{}, "a.test a.test:8080"},
		{"three siblings collapse", obs("x.a.test", "y.a.test", "z.a.test"), Options{}, "*.a.test"},
		{"two siblings do not", obs("x.a.test", "y.a.test"), Options{}, "x.a.test y.a.test"},
		{"--min-siblings 2", obs("x.a.test", "y.a.test"), Options{MinSiblings: 2}, "*.a.test"},
		{"the apex seen too", obs("a.test", "x.a.test", "y.a.test", "z.a.test"), Options{}, "**.a.test"},
		{"deeper siblings count by child", obs("p.x.a.test", "q.x.a.test", "r.x.a.test", "y.a.test"), Options{}, "*.x.a.test y.a.test"},
		{"the highest parent wins", obs("p.x.a.test", "y.a.test", "z.a.test"), Options{}, "*.a.test"},
		{"siblings per port", obs("x.a.test:8080", "y.a.test:8080", "z.a.test:9090"), Options{}, "x.a.test:8080 y.a.test:8080 z.a.test:9090"},
		{"siblings on one port", obs("x.a.test:8080", "y.a.test:8080", "z.a.test:8080"), Options{}, "*.a.test:8080"},
		{"never *.co.uk", obs("a.co.uk", "b.co.uk", "c.co.uk"), Options{}, "a.co.uk b.co.uk c.co.uk"},
		{"never **.github.io", obs("a.github.io", "b.github.io", "c.github.io", "github.io"), Options{}, "a.github.io b.github.io c.github.io github.io"},
		{"never *.com", obs("a.com", "b.com", "c.com"), Options{}, "a.com b.com c.com"},
		{"never *.test", obs("a.test", "b.test", "c.test"), Options{}, "a.test b.test c.test"},
		{"below a public suffix is fine", obs("a.b.co.uk", "c.b.co.uk", "d.b.co.uk"), Options{}, "*.b.co.uk"},
		{"addresses stay exact", obs("10.0.0.1", "10.0.0.2", "10.0.0.3", "[2001:db8::1]:8080"), Options{}, "10.0.0.1 10.0.0.2 10.0.0.3 [2001:db8::1]:8080"},
		{"--cidr-prefix", obs("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.1"), Options{Prefix4: 24}, "10.0.0.0/24 10.0.1.1"},
		{"--cidr-prefix for IPv6", obs("[2001:db8::1]:8080", "[2001:db8::2]:8080", "[2001:db8::3]:8080"), Options{Prefix6: 64}, "[2001:db8::/64]:8080"},
		{"a kept sibling blocks the collapse", obs("x.a.test", "y.a.test", "z.a.test"), Options{KeepDenied: keep("w.a.test:443")}, "x.a.test y.a.test z.a.test"},
		{"a kept destination is not suggested", obs("x.a.test", "y.a.test"), Options{KeepDenied: keep("x.a.test")}, "y.a.test"},
		{"a kept port writes the others'", obs("a.test:443"), Options{KeepDenied: keep("a.test:22")}, "a.test:443"},
		{"a kept address blocks its CIDR", obs("10.0.0.1", "10.0.0.2", "10.0.0.3"), Options{Prefix4: 24, KeepDenied: keep("10.0.0.9:443")}, "10.0.0.1 10.0.0.2 10.0.0.3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := Suggest(tc.obs, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range res.Allow {
				got = append(got, s.Pattern)
			}
			if strings.Join(got, " ") != tc.want {
				t.Errorf("patterns %q, want %q", got, tc.want)
			}
			covers(t, res, tc.obs)
		})
	}
}

// covers checks that the suggestion matches every observation and no kept
// destination, as the engine matches patterns (engine.Candidates, which a
// differential test keeps equal to the policy library's).
func covers(t *testing.T, res Result, obs []Observation) {
	t.Helper()
	match := func(tg Target) string {
		cands := engine.Candidates(tg.Host, tg.Port)
		for _, s := range res.Allow {
			if slices.Contains(cands, s.Pattern) {
				return s.Pattern
			}
		}
		return ""
	}
	kept := map[Target]bool{}
	for _, k := range res.Kept {
		kept[k.Target] = true
		if p := match(k.Target); p != "" {
			t.Errorf("kept %s is covered by %s", k, p)
		}
	}
	for _, o := range obs {
		if !kept[o.Target] && match(o.Target) == "" {
			t.Errorf("%s is not covered", o.Target)
		}
	}
}

// TestSuggestDecidesWithTheDefaultPolicy: the real engine, with the
// default policy and the suggestion as its allow list, allows every
// observation and denies the kept destinations.
func TestSuggestDecidesWithTheDefaultPolicy(t *testing.T) {
	o := obs("x.a.test", "y.a.test", "p.q.z.a.test", "a.test:8080", "a.co.uk", "b.co.uk", "c.co.uk",
		"10.0.0.1", "10.0.0.2", "10.0.0.3", "[2001:db8::1]:8080", "kept.b.test:8443", "other.b.test")
	res, err := Suggest(o, Options{Prefix4: 24, KeepDenied: keep("kept.b.test:8443", "w.a.test:22")})
	if err != nil {
		t.Fatal(err)
	}
	decides(t, res, o)
}

// decides checks with the real engine and the default policy that the
// suggestion allows every observation and denies every kept destination.
func decides(t *testing.T, res Result, obs []Observation) {
	t.Helper()
	var allow []string
	for _, s := range res.Allow {
		allow = append(allow, s.Pattern)
	}
	e := enginetest.Start(t, engine.Config{Default: policies.FS, Allow: allow, Logger: slog.New(slog.DiscardHandler), DecisionTimeout: 10 * time.Second})
	kept := map[Target]bool{}
	for _, k := range res.Kept {
		kept[k.Target] = true
		if d := decide(t, e, k.Target); d.Allow {
			t.Errorf("kept %s is allowed by %s", k, d.Rule)
		}
	}
	for _, o := range obs {
		if d := decide(t, e, o.Target); !d.Allow && !kept[o.Target] {
			t.Errorf("%s is denied: %s", o.Target, d.Reason)
		}
	}
}

func decide(t *testing.T, e *engine.Engine, tg Target) engine.Decision {
	t.Helper()
	d, err := e.Decide(t.Context(), engine.Input{Host: tg.Host, Port: tg.Port, Scheme: engine.SchemeHTTPS, Method: engine.MethodConnect, HostIsIP: isIP(tg.Host)})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestSuggestRefusesBadPrefixes(t *testing.T) {
	for _, o := range []Options{{Prefix4: 33}, {Prefix6: -1}} {
		if _, err := Suggest(obs("a.test"), o); err == nil {
			t.Errorf("Suggest(%+v) accepted", o)
		}
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]string{
		"A.Test": "a.test:443", "a.test:22": "a.test:22", "[2001:DB8::1]:80": "[2001:db8::1]:80", "2001:db8::1": "[2001:db8::1]:443",
	} {
		got, err := ParseTarget(in)
		if err != nil || got.String() != want {
			t.Errorf("ParseTarget(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"*.a.test", "a.test:0", "a.test:x", "10.0.0.0/8", ""} {
		if _, err := ParseTarget(in); err == nil {
			t.Errorf("ParseTarget(%q) accepted", in)
		}
	}
}

// TestCommentsCannotAddLines: what comes from the logs is escaped.
func TestCommentsCannotAddLines(t *testing.T) {
	o := obs("a.test")
	o[0].AttemptID = "x\n  - \"*\""
	o[0].Labels = map[string]string{"k": "v\r\nallow contains \"*\""}
	res, err := Suggest(o, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range Formats {
		var b bytes.Buffer
		if err := Write(&b, res, f); err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), `- "*"`) || strings.HasPrefix(line, `allow contains "*"`) {
				t.Errorf("%s: a label added a line:\n%s", f, b.String())
			}
		}
	}
}
