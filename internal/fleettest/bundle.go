package fleettest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

// Bundle is an OPA bundle: its manifest's revision and roots, and its
// files by path.
type Bundle struct {
	Revision string
	Roots    []string
	Files    map[string]string
}

// Build writes b as a bundle tarball, signed with privateKey under kid
// unless privateKey is "", as `opa build --signing-key` does. tamper, if
// set, changes files after signing: the tarball carries the old signature.
func (b Bundle) Build(t testing.TB, privateKey, kid string, tamper map[string]string) []byte {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bundle")
	manifest, _ := json.Marshal(map[string]any{"revision": b.Revision, "roots": b.Roots})
	writeFile(t, filepath.Join(dir, ".manifest"), string(manifest))
	for name, body := range b.Files {
		writeFile(t, filepath.Join(dir, name), body)
	}
	load := func() *bundle.Bundle {
		bb, err := loader.NewFileLoader().WithRegoVersion(ast.RegoV1).WithSkipBundleVerification(true).AsBundle(dir)
		if err != nil {
			t.Fatal(err)
		}
		return bb
	}
	bb := load()
	if privateKey != "" {
		if err := bb.GenerateSignature(bundle.NewSigningConfig(privateKey, "RS256", ""), kid, false); err != nil {
			t.Fatal(err)
		}
	}
	if len(tamper) > 0 {
		sig := bb.Signatures
		for name, body := range tamper {
			writeFile(t, filepath.Join(dir, name), body)
		}
		bb = load()
		bb.Signatures = sig
	}
	var buf bytes.Buffer
	if err := bundle.NewWriter(&buf).Write(*bb); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeFile(t testing.TB, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}
