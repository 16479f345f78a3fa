package engine

import (
	"context"
	"fmt"
	"testing"
	"testing/fstest"

	"github.com/regate/regate/policies"
)

const variantBound = `package regate.network

import data.regate.lib.patterns

cands := patterns.candidates(input.host, input.port)

allow_obj := data.regate.allow
deny_obj := data.regate.deny

deny_hits := [c | some c in cands; deny_obj[c]]
allow_hits := [c | some c in cands; allow_obj[c]]

decision := {"allow": false, "reason": deny_hits[0]} if count(deny_hits) > 0
else := {"allow": true, "reason": allow_hits[0]} if count(allow_hits) > 0
else := {"allow": false, "reason": "no"}
`

const variantInputCands = `package regate.network

allow_obj := data.regate.allow
deny_obj := data.regate.deny

deny_hits := [c | some c in input.cands; deny_obj[c]]
allow_hits := [c | some c in input.cands; allow_obj[c]]

decision := {"allow": false, "reason": deny_hits[0]} if count(deny_hits) > 0
else := {"allow": true, "reason": allow_hits[0]} if count(allow_hits) > 0
else := {"allow": false, "reason": "no"}
`

const variantHitsAllow = `package regate.network

import data.regate.lib.hits

decision := {"allow": true, "reason": hits.allow}
`

const variantHitsBoth = `package regate.network

import data.regate.lib.hits

decision := {"allow": false, "reason": hits.deny} if hits.deny
else := {"allow": true, "reason": hits.allow}
`

const variantCands = `package regate.network

import data.regate.lib.hits

decision := {"allow": true, "reason": hits.candidates[0]}
`

const variantTrivial = `package regate.network

decision := {"allow": true, "reason": "x"}
`

func BenchmarkVariants(b *testing.B) {
	lib, _ := policies.FS.ReadFile("lib/patterns.rego")
	hits, _ := policies.FS.ReadFile("lib/hits.rego")
	for name, pol := range map[string]string{"cands": variantCands, "hitsallow": variantHitsAllow, "hitsboth": variantHitsBoth, "inputcands": variantInputCands, "trivial": variantTrivial} {
		b.Run(name, func(b *testing.B) {
			fs := fstest.MapFS{"network.rego": {Data: []byte(pol)}, "lib/patterns.rego": {Data: lib}, "lib/hits.rego": {Data: hits}}
			e, err := New(Config{Default: fs, Allow: patterns(10000), Deny: []string{"evil.test"}})
			if err != nil {
				b.Fatal(err)
			}
			if err := e.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer e.Stop(context.Background())
			ctx := context.Background()
			for b.Loop() {
				d, _ := e.Decide(ctx, Input{Host: "registry.npmjs.org", Port: 443, Scheme: "https", Method: "CONNECT"})
				_ = d
			}
			d, _ := e.Decide(ctx, Input{Host: "registry.npmjs.org", Port: 443, Scheme: "https", Method: "CONNECT"})
			fmt.Println(name, d.Allow, d.Reason)
		})
	}
}
