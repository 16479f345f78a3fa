package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"

	"github.com/regate/regate/internal/fleettest"
)

// orgPolicy decides from the team bundle's data, so that the two bundles
// only work together.
const orgPolicy = `package regate.network

default decision := {"allow": false, "reason": "no rule allows", "rule": "default"}

decision := {"allow": false, "reason": "org deny", "rule": "org"} if data.regate.org.deny[input.host]

decision := {"allow": true, "reason": "team allow", "rule": "team"} if {
	not data.regate.org.deny[input.host]
	data.regate.team.allow[input.host]
}
`

type testBundle struct {
	revision string
	roots    []string
	files    map[string]string
}

func (b testBundle) writeDir(t *testing.T, dir string) string {
	t.Helper()
	manifest, _ := json.Marshal(map[string]any{"revision": b.revision, "roots": b.roots})
	writeFile(t, filepath.Join(dir, ".manifest"), string(manifest))
	for name, body := range b.files {
		writeFile(t, filepath.Join(dir, name), body)
	}
	return dir
}

func orgBundle(rev string) testBundle {
	return testBundle{revision: rev, roots: []string{"regate/network", "regate/org"}, files: map[string]string{
		"network.rego":         orgPolicy,
		"regate/org/data.json": `{"deny": {"evil.test": true}}`,
	}}
}

func teamBundle(rev string) testBundle {
	return testBundle{revision: rev, roots: []string{"regate/team"}, files: map[string]string{
		"regate/team/data.json": `{"allow": {"team.test": true, "evil.test": true}}`,
	}}
}

// signDir writes .signatures.json for a bundle directory with paths relative
// to the bundle root, which is what `opa build --signing-key` puts in a
// tarball. (`opa sign` on a directory names files by the path it was given,
// so a signed directory verifies only when loaded by that same path; signed
// bundles are distributed as tarballs.)
func signDir(t *testing.T, dir, privateKey string) {
	t.Helper()
	b, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).WithSkipBundleVerification(true).AsBundle(dir)
	must(t, err)
	must(t, b.GenerateSignature(bundle.NewSigningConfig(privateKey, "RS256", ""), "default", false))
	sig, err := json.Marshal(b.Signatures)
	must(t, err)
	writeFile(t, filepath.Join(dir, ".signatures.json"), string(sig))
}

// tarball writes a directory bundle as a .tar.gz, signatures included.
func tarball(t *testing.T, dir, out string) string {
	t.Helper()
	b, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).WithSkipBundleVerification(true).AsBundle(dir)
	must(t, err)
	if sig, err := os.ReadFile(filepath.Join(dir, ".signatures.json")); err == nil {
		must(t, json.Unmarshal(sig, &b.Signatures))
	}
	var buf bytes.Buffer
	must(t, bundle.NewWriter(&buf).Write(*b))
	must(t, os.WriteFile(out, buf.Bytes(), 0o644))
	return out
}

func keysConfig(publicKey string) []byte {
	cfg, _ := json.Marshal(map[string]any{"keys": map[string]any{"default": map[string]any{"key": publicKey, "algorithm": "RS256"}}})
	return cfg
}

func TestBundles(t *testing.T) {
	tmp := t.TempDir()
	org := orgBundle("org-1").writeDir(t, filepath.Join(tmp, "org"))
	team := teamBundle("team-7").writeDir(t, filepath.Join(tmp, "team"))
	teamTar := tarball(t, team, filepath.Join(tmp, "team.tar.gz"))
	tests := []struct {
		name     string
		policies []string
	}{
		{"two directories", []string{org, team}},
		{"directory and tarball", []string{org, teamTar}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var log syncBuffer
			e := startEngine(t, Config{Policies: tc.policies, DecisionLog: &log})
			if !decideHost(t, e, "team.test").Allow {
				t.Fatal("team allow not applied")
			}
			if d := decideHost(t, e, "evil.test"); d.Allow || d.Reason != "org deny" {
				t.Fatalf("org deny not applied: %+v", d)
			}
			revs := e.Status().Bundles
			if revs[filepath.Clean(tc.policies[0])] != "org-1" || revs[filepath.Clean(tc.policies[1])] != "team-7" {
				t.Fatalf("bundle revisions = %v", revs)
			}
			e.Flush(context.Background())
			if !strings.Contains(log.String(), `"revision":"team-7"`) {
				t.Fatalf("decision events do not carry bundle revisions:\n%s", log.String())
			}
		})
	}
}

func TestBundlesOverlappingRootsRefused(t *testing.T) {
	tmp := t.TempDir()
	a := testBundle{revision: "1", roots: []string{"regate"}, files: map[string]string{"a.rego": allowPolicy("a.test")}}.writeDir(t, filepath.Join(tmp, "a"))
	b := testBundle{revision: "1", roots: []string{"regate/team"}, files: map[string]string{"regate/team/data.json": `{"x": 1}`}}.writeDir(t, filepath.Join(tmp, "b"))
	e, err := New(Config{Policies: []string{a, b}})
	must(t, err)
	err = e.Start(context.Background())
	if err == nil {
		t.Fatal("overlapping roots accepted")
	}
	for _, want := range []string{a, b, "overlap"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not mention %q", err, want)
		}
	}
}

func TestSignedBundles(t *testing.T) {
	private, public := fleettest.KeyPair(t)
	otherPrivate, _ := fleettest.KeyPair(t)
	tests := []struct {
		name   string
		build  func(t *testing.T, dir string) string
		wantOK bool
		errHas string
	}{
		{"signed tarball", func(t *testing.T, dir string) string {
			signDir(t, dir, private)
			return tarball(t, dir, dir+".tar.gz")
		}, true, ""},
		{"tampered after signing", func(t *testing.T, dir string) string {
			signDir(t, dir, private)
			writeFile(t, filepath.Join(dir, "regate", "org", "data.json"), `{"deny": {}}`)
			return tarball(t, dir, dir+".tar.gz")
		}, false, "digest mismatch"},
		{"policy added after signing", func(t *testing.T, dir string) string {
			signDir(t, dir, private)
			writeFile(t, filepath.Join(dir, "extra.rego"), "package regate.org\n\nx := 1\n")
			return tarball(t, dir, dir+".tar.gz")
		}, false, "not included in bundle signature"},
		{"signed with another key", func(t *testing.T, dir string) string {
			signDir(t, dir, otherPrivate)
			return tarball(t, dir, dir+".tar.gz")
		}, false, "verification"},
		{"unsigned", func(t *testing.T, dir string) string { return tarball(t, dir, dir+".tar.gz") }, false, ".signatures.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := orgBundle("signed-1").writeDir(t, filepath.Join(t.TempDir(), "org"))
			path := tc.build(t, dir)
			e, err := New(Config{Policies: []string{path}, OPA: keysConfig(public)})
			must(t, err)
			err = e.Start(context.Background())
			t.Cleanup(func() { e.Stop(context.Background()) })
			if tc.wantOK {
				if err != nil {
					t.Fatalf("signed bundle refused: %v", err)
				}
				if d := decideHost(t, e, "evil.test"); d.Reason != "org deny" {
					t.Fatalf("signed bundle not deciding: %+v", d)
				}
				return
			}
			if err == nil {
				t.Fatal("bad bundle accepted")
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %q does not mention %q", err, tc.errHas)
			}
		})
	}
}

// TestTamperedBundleOnReloadKeepsLastGood: a signed bundle replaced on disk
// by a tampered one is refused and the signed revision keeps deciding.
func TestTamperedBundleOnReloadKeepsLastGood(t *testing.T) {
	private, public := fleettest.KeyPair(t)
	dir := orgBundle("signed-1").writeDir(t, filepath.Join(t.TempDir(), "org"))
	signDir(t, dir, private)
	path := tarball(t, dir, dir+".tar.gz")
	e := startEngine(t, Config{Policies: []string{path}, OPA: keysConfig(public)})
	writeFile(t, filepath.Join(dir, "regate", "org", "data.json"), `{"deny": {}}`)
	tarball(t, dir, path)
	if err := e.Reload(context.Background()); err == nil {
		t.Fatal("tampered bundle accepted on reload")
	}
	if d := decideHost(t, e, "evil.test"); d.Reason != "org deny" {
		t.Fatalf("last good bundle lost: %+v", d)
	}
	if e.Status().Bundles[path] != "signed-1" {
		t.Fatalf("revision changed: %v", e.Status().Bundles)
	}
}

// TestPatternLibraryBesideOwnPolicy: a --policy that replaces the default
// can still use the embedded pattern library, and a bundle that ships its
// own copy of the library (root regate/lib) takes its place without
// conflict.
func TestPatternLibraryBesideOwnPolicy(t *testing.T) {
	own := "package regate.network\n\nimport data.regate.lib.hits\n\n" +
		"default decision := {\"allow\": false, \"reason\": \"no\"}\n\n" +
		"decision := {\"allow\": true, \"reason\": hits.allow} if hits.allow\n"
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "own.rego"), own)
	for _, policies := range [][]string{{dir}, {dir, "../policies/lib"}} {
		e := startEngine(t, Config{Policies: policies, Default: policiesFS(), Allow: []string{"**.github.com"}})
		if d := decideHost(t, e, "api.github.com"); !d.Allow || d.Reason != "**.github.com" {
			t.Fatalf("policies %v: %+v", policies, d)
		}
	}
}
