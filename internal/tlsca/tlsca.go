// Package tlsca is the certificate authority of HTTPS inspection: an
// ECDSA P-256 CA, generated in memory (its key never written anywhere) or
// loaded from files, that issues a leaf certificate per host on first use
// and keeps a bounded cache of them.
package tlsca

import (
	"container/list"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/idna"

	"github.com/regate/regate/internal/private"
)

// CA issues leaf certificates. It is safe for concurrent use.
type CA struct {
	cert    *x509.Certificate
	certDER []byte
	key     *ecdsa.PrivateKey
	// leafKey is shared by every leaf: a leaf is then one signature, and
	// the key proves nothing a client relies on beyond the CA's signature.
	leafKey *ecdsa.PrivateKey

	mu    sync.Mutex
	max   int
	cache map[string]*list.Element // host → element of lru (*leaf)
	lru   list.List                // most recently used first
}

type leaf struct {
	host string
	cert *tls.Certificate
}

// DefaultCacheSize is how many leaves a CA keeps.
const DefaultCacheSize = 1024

// leafValidity is a leaf's lifetime (within the CA's).
const leafValidity = 24 * time.Hour

// New generates a CA valid from now for validity, with the common name
// name. Its key lives in memory only.
func New(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"regate"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating the CA certificate: %w", err)
	}
	return fromParts(der, key)
}

// Load reads a CA from a PEM certificate file and a PEM key file (EC or
// PKCS#8 ECDSA); the key file must be the user's own and private, as the
// admin token file.
func Load(certFile, keyFile string) (*CA, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("inspection CA: %w", err)
	}
	keyPEM, err := private.ReadFile(keyFile, private.Secret, 1<<20)
	if err != nil {
		return nil, fmt.Errorf("inspection CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	if cb == nil || cb.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("inspection CA %s: no PEM certificate", certFile)
	}
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, fmt.Errorf("inspection CA key %s: no PEM key", keyFile)
	}
	var key *ecdsa.PrivateKey
	if k, err := x509.ParseECPrivateKey(kb.Bytes); err == nil {
		key = k
	} else if k, err := x509.ParsePKCS8PrivateKey(kb.Bytes); err == nil {
		if ek, ok := k.(*ecdsa.PrivateKey); ok {
			key = ek
		}
	}
	if key == nil {
		return nil, fmt.Errorf("inspection CA key %s: not an ECDSA private key", keyFile)
	}
	ca, err := fromParts(cb.Bytes, key)
	if err != nil {
		return nil, err
	}
	if !ca.cert.IsCA {
		return nil, fmt.Errorf("inspection CA %s: not a CA certificate", certFile)
	}
	if !key.PublicKey.Equal(ca.cert.PublicKey) {
		return nil, fmt.Errorf("inspection CA: the key of %s does not match %s", keyFile, certFile)
	}
	return ca, nil
}

func fromParts(der []byte, key *ecdsa.PrivateKey) (*CA, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("inspection CA: %w", err)
	}
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the leaf key: %w", err)
	}
	return &CA{cert: cert, certDER: der, key: key, leafKey: leafKey, max: DefaultCacheSize, cache: map[string]*list.Element{}}, nil
}

// CertPEM is the CA certificate, PEM-encoded (what clients must trust).
func (ca *CA) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.certDER})
}

// Certificate is the CA certificate.
func (ca *CA) Certificate() *x509.Certificate { return ca.cert }

// Leaf returns the certificate for host (a DNS name or an IP literal),
// issuing it on first use. Names are taken in lower case without a
// trailing dot, internationalised names as their A-label; a name that is
// not a valid host name is refused.
func (ca *CA) Leaf(host string) (*tls.Certificate, error) {
	host, err := canonical(host)
	if err != nil {
		return nil, err
	}
	ca.mu.Lock()
	if e, ok := ca.cache[host]; ok {
		ca.lru.MoveToFront(e)
		c := e.Value.(*leaf).cert
		ca.mu.Unlock()
		return c, nil
	}
	ca.mu.Unlock()
	c, err := ca.issue(host)
	if err != nil {
		return nil, err
	}
	ca.mu.Lock()
	defer ca.mu.Unlock()
	if e, ok := ca.cache[host]; ok { // issued concurrently: keep one
		ca.lru.MoveToFront(e)
		return e.Value.(*leaf).cert, nil
	}
	ca.cache[host] = ca.lru.PushFront(&leaf{host: host, cert: c})
	for ca.lru.Len() > ca.max {
		old := ca.lru.Back()
		ca.lru.Remove(old)
		delete(ca.cache, old.Value.(*leaf).host)
	}
	return c, nil
}

// Len is how many leaves are cached.
func (ca *CA) Len() int {
	ca.mu.Lock()
	defer ca.mu.Unlock()
	return ca.lru.Len()
}

func (ca *CA) issue(host string) (*tls.Certificate, error) {
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     minTime(now.Add(leafValidity), ca.cert.NotAfter),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &ca.leafKey.PublicKey, ca.key)
	if err != nil {
		return nil, fmt.Errorf("issuing a certificate for %s: %w", host, err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der, ca.certDER}, PrivateKey: ca.leafKey, Leaf: parsed}, nil
}

// canonical is the name a leaf is issued for, or why none can be.
func canonical(host string) (string, error) {
	h := strings.TrimSuffix(strings.ToLower(host), ".")
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if ip := net.ParseIP(h); ip != nil {
		return ip.String(), nil
	}
	if h == "" || len(h) > 253 {
		return "", fmt.Errorf("no certificate for host %q: empty or longer than 253 bytes", clip(host))
	}
	a, err := idna.Lookup.ToASCII(h)
	if err != nil || a == "" || len(a) > 253 || !validLabels(a) {
		return "", fmt.Errorf("no certificate for host %q: not a valid host name", clip(host))
	}
	return a, nil
}

// validLabels reports whether every label of the A-label name a is 1 to
// 63 letters, digits, hyphens or underscores.
func validLabels(a string) bool {
	for label := range strings.SplitSeq(a, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
