package engine

import (
	"context"
	"encoding/json"
	"maps"
	"testing"
	"time"

	"github.com/regate/regate/internal/fleettest"
)

// Fixtures for remote_test.go; the bundle server, the log and status
// receiver and bundle signing are fleettest's.

// fleetPolicy allows the hosts in the bundle's data; its reason names the
// bundle's data revision. system.log.mask hides the attempt id of
// "secret-" attempts from every decision-log sink.
const fleetPolicy = `package regate.network

default decision := {"allow": false, "reason": "not allowed", "rule": "default"}

decision := {"allow": true, "reason": data.regate.org.rev, "rule": "org"} if data.regate.org.allow[input.host]
`

const fleetMask = `package system.log

mask contains "/input/attempt_id" if startswith(input.input.attempt_id, "secret-")
`

// fleetBundle is the org bundle at revision rev allowing hosts.
func fleetBundle(rev string, hosts ...string) testBundle {
	allow := map[string]bool{}
	for _, h := range hosts {
		allow[h] = true
	}
	data, _ := json.Marshal(map[string]any{"allow": allow, "rev": rev})
	return testBundle{revision: rev, roots: []string{"regate/network", "regate/org", "system/log"}, files: map[string]string{
		"network.rego":         fleetPolicy,
		"mask.rego":            fleetMask,
		"regate/org/data.json": string(data),
	}}
}

// build writes b as a bundle tarball, signed with privateKey under kid
// unless privateKey is "". tamper, if set, changes files after signing:
// the tarball carries the old signature.
func (b testBundle) build(t *testing.T, privateKey, kid string, tamper map[string]string) []byte {
	t.Helper()
	return fleettest.Bundle{Revision: b.revision, Roots: b.roots, Files: b.files}.Build(t, privateKey, kid, tamper)
}

// opaConfig is OPA's configuration for an org bundle from bundles, polled
// every second, signed with publicKey under kid "org" unless it is "". extra is merged on
// top: its "org" into the org bundle's configuration, objects (services,
// keys) entry by entry, anything else replaced.
func opaConfig(t *testing.T, bundles, publicKey string, extra map[string]any) []byte {
	t.Helper()
	org := map[string]any{
		"service": "bundles", "resource": "org.tar.gz",
		"polling": map[string]any{"min_delay_seconds": 1, "max_delay_seconds": 1},
	}
	cfg := map[string]any{
		"services": map[string]any{"bundles": map[string]any{"url": bundles}},
		"bundles":  map[string]any{"org": org},
	}
	if publicKey != "" {
		org["signing"] = map[string]any{"keyid": "org"}
		cfg["keys"] = map[string]any{"org": map[string]any{"algorithm": "RS256", "key": publicKey}}
	}
	for k, v := range extra {
		if k == "org" {
			for ok, ov := range v.(map[string]any) {
				org[ok] = ov
			}
			continue
		}
		cur, ok1 := cfg[k].(map[string]any)
		add, ok2 := v.(map[string]any)
		if ok1 && ok2 { // services, keys: add entries
			maps.Copy(cur, add)
			continue
		}
		cfg[k] = v
	}
	b, err := json.Marshal(cfg)
	must(t, err)
	return b
}

// revisionOf is the revision of bundle name deciding in e.
func revisionOf(e *Engine, name string) string { return e.Status().Bundles[name] }

// waitRevision waits until every engine decides by revision rev of name.
func waitRevision(t *testing.T, name, rev string, engines ...*Engine) {
	t.Helper()
	waitFor(t, name+" at revision "+rev, func() bool {
		for _, e := range engines {
			if revisionOf(e, name) != rev {
				return false
			}
		}
		return true
	})
}

func stopNow(e *Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.Stop(ctx)
}
