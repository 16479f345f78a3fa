package catrust

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pkcs12 "software.sslmate.com/src/go-pkcs12"

	"github.com/regate/regate/internal/tlsca"
)

func TestPrepare(t *testing.T) {
	ca, err := tlsca.New("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := tlsca.New("the user's own CA", time.Hour)
	dir := t.TempDir()
	users := filepath.Join(t.TempDir(), "corp.pem")
	if err := os.WriteFile(users, other.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := Prepare(dir, ca.CertPEM(), []string{"PATH=/bin", "REQUESTS_CA_BUNDLE=" + users, "NODE_EXTRA_CA_CERTS=/nonexistent"})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, kv := range tr.Env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	for _, v := range append(BundleVars, ExtraVars...) {
		if env[v] == "" {
			t.Errorf("%s is not set", v)
		}
	}
	read := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s is mode %v, want 0644", path, fi.Mode().Perm())
		}
		return b
	}
	if b := read(env["SSL_CERT_FILE"]); !bytes.HasSuffix(b, ca.CertPEM()) || (tr.System != "" && len(b) <= len(ca.CertPEM())) {
		t.Errorf("SSL_CERT_FILE is not the system's roots plus the CA (%d bytes, system %q)", len(b), tr.System)
	}
	if b := read(env["REQUESTS_CA_BUNDLE"]); !bytes.HasPrefix(b, other.CertPEM()) || !bytes.HasSuffix(b, ca.CertPEM()) {
		t.Error("the user's REQUESTS_CA_BUNDLE is not kept and combined with the CA")
	}
	if b := read(env["NODE_EXTRA_CA_CERTS"]); !bytes.Equal(b, ca.CertPEM()) {
		t.Error("NODE_EXTRA_CA_CERTS is not the CA alone (the user's names no file)")
	}
	opts := env["JAVA_TOOL_OPTIONS"]
	path := between(opts, "-Djavax.net.ssl.trustStore=", " ")
	pass := between(opts, "trustStorePassword=", " ")
	certs, err := pkcs12.DecodeTrustStore(read(path), pass)
	if err != nil {
		t.Fatalf("the Java trust store: %v", err)
	}
	found := false
	for _, c := range certs {
		found = found || c.Equal(ca.Certificate())
	}
	if !found {
		t.Errorf("the Java trust store (%d certificates) lacks the CA", len(certs))
	}
	for _, f := range []string{tr.Bundle, env["NODE_EXTRA_CA_CERTS"], path} {
		if b, _ := os.ReadFile(f); bytes.Contains(b, []byte("PRIVATE KEY")) {
			t.Errorf("%s holds a private key", f)
		}
	}
	if _, err := Prepare(dir, []byte("not a certificate"), nil); err == nil {
		t.Error("a CA that is not PEM was accepted")
	}
}

func between(s, start, end string) string {
	i := strings.Index(s, start)
	if i < 0 {
		return ""
	}
	s = s[i+len(start):]
	if j := strings.Index(s, end); j >= 0 {
		return s[:j]
	}
	return s
}
