package tlsca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func newCA(t testing.TB) *CA {
	t.Helper()
	ca, err := New("regate test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// verify checks that c chains to ca for name.
func verify(t *testing.T, ca *CA, host, name string) {
	t.Helper()
	c, err := ca.Leaf(host)
	if err != nil {
		t.Fatalf("Leaf(%q): %v", host, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
		t.Errorf("Leaf(%q) does not verify for %q: %v", host, name, err)
	}
}

func TestLeaf(t *testing.T) {
	ca := newCA(t)
	verify(t, ca, "github.test", "github.test")
	verify(t, ca, "GitHub.TEST.", "github.test")
	verify(t, ca, "bücher.example", "xn--bcher-kva.example")
	verify(t, ca, "10.1.2.3", "10.1.2.3")
	verify(t, ca, "[::1]", "::1")
	a, _ := ca.Leaf("github.test")
	b, _ := ca.Leaf("GITHUB.test")
	if a != b {
		t.Error("the same host was issued twice")
	}
	if !ca.Certificate().IsCA || ca.Certificate().PublicKeyAlgorithm != x509.ECDSA {
		t.Error("the CA is not an ECDSA CA")
	}
	if a.Leaf.NotAfter.After(ca.Certificate().NotAfter) {
		t.Error("a leaf outlives its CA")
	}
	for _, host := range []string{"", ".", strings.Repeat("a", 254), "a..b", "exa mple.test", "\x00.test", strings.Repeat("a", 64) + ".test"} {
		if _, err := ca.Leaf(host); err == nil {
			t.Errorf("Leaf(%q) issued a certificate", host)
		}
	}
}

func TestLeafCacheBounded(t *testing.T) {
	ca := newCA(t)
	ca.max = 16
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 40 {
				if _, err := ca.Leaf(string(rune('a'+i)) + strings.Repeat("x", j%20+1) + ".test"); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := ca.Len(); n > 16 {
		t.Errorf("%d leaves cached, want at most 16", n)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	gen := newCA(t)
	der, _ := x509.MarshalECPrivateKey(gen.key)
	certFile := filepath.Join(dir, "ca.pem")
	keyFile := filepath.Join(dir, "ca.key")
	if err := os.WriteFile(certFile, gen.CertPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ca, err := Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	verify(t, ca, "loaded.test", "loaded.test")

	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(certFile, keyFile); err == nil || !strings.Contains(err.Error(), "group or others") {
		t.Errorf("a key readable by others: %v", err)
	}
	other, _ := x509.MarshalECPrivateKey(key)
	wrong := filepath.Join(dir, "wrong.key")
	if err := os.WriteFile(wrong, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: other}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(certFile, wrong); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("a key of another CA: %v", err)
	}
}

// FuzzLeaf: whatever the SNI, Leaf either refuses it or issues a
// certificate that verifies for the name it canonicalised.
func FuzzLeaf(f *testing.F) {
	for _, s := range []string{"github.test", "", ".", "1.2.3.4", "[::1]", "::ffff:1.2.3.4", "bücher.example", strings.Repeat("a.", 130), "xn--", "0x7f.1", "a_b.test", "*.test"} {
		f.Add(s)
	}
	ca := newCA(f)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Certificate())
	f.Fuzz(func(t *testing.T, host string) {
		c, err := ca.Leaf(host)
		if err != nil {
			return
		}
		name, err := canonical(host)
		if err != nil {
			t.Fatalf("issued for %q, which does not canonicalise: %v", host, err)
		}
		if len(c.Leaf.DNSNames)+len(c.Leaf.IPAddresses) != 1 {
			t.Fatalf("leaf for %q has names %v %v", host, c.Leaf.DNSNames, c.Leaf.IPAddresses)
		}
		if _, err := c.Leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil && !strings.Contains(err.Error(), "valid for") {
			t.Fatalf("leaf for %q (%q) does not verify: %v", host, name, err)
		}
	})
}

func BenchmarkIssue(b *testing.B) {
	ca := newCA(b)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := ca.issue("host" + string(rune('a'+i%26)) + ".test"); err != nil {
			b.Fatal(err)
		}
	}
}
