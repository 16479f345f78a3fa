package parent

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNewRefusesAndRedacts(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{"ftp://u:topsecret@proxy:21", `scheme "ftp"`},
		{"http://u:topsecret@proxy:3128/path", "a path, query or fragment"},
		{"proxy.corp:3128", "not a URL"},
		{"http://u:topsecret@proxy:3128?x=1", "a path, query or fragment"},
	} {
		_, err := New(tt.raw, Options{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%q) = %v, want an error with %q", tt.raw, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "topsecret") {
			t.Errorf("New(%q): the password is in the error: %v", tt.raw, err)
		}
	}
	p, err := New("http://alice:topsecret@proxy.corp:3128", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "http://alice:***@proxy.corp:3128" {
		t.Errorf("String = %q", got)
	}
	for raw, want := range map[string]string{
		"https://proxy.corp":   "https://proxy.corp:443",
		"socks5h://proxy.corp": "socks5://proxy.corp:1080",
		"http://[::1]":         "http://[::1]:80",
	} {
		p, err := New(raw, Options{})
		if err != nil || p.String() != want {
			t.Errorf("New(%q) = %v, %v, want %s", raw, p, err, want)
		}
	}
	if _, err := New("http://proxy:3128", Options{CAFile: "/nonexistent"}); err == nil {
		t.Error("a CA file for an http:// parent was accepted")
	}
}

func TestAuthFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte("bob:s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := New("http://alice:other@proxy:3128", Options{AuthFile: good})
	if err != nil {
		t.Fatal(err)
	}
	if got := p.String(); got != "http://bob:***@proxy:3128" {
		t.Errorf("the auth file did not replace the URL's user: %s", got)
	}
	for name, tt := range map[string]struct {
		content string
		mode    os.FileMode
		want    string
	}{
		"readable by others": {"bob:s3cret\n", 0o644, "group or others"},
		"no colon":           {"bob\n", 0o600, "user:password"},
		"empty":              {"", 0o600, "empty"},
	} {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, tt.mode); err != nil {
			t.Fatal(err)
		}
		_, err := New("http://proxy:3128", Options{AuthFile: path})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", name, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the password is in the error", name)
		}
	}
}

// connectParent is a minimal HTTP CONNECT proxy on loopback: it answers
// each CONNECT with status (200 relays to the target and first sends
// greeting right after its answer), and records the requests.
func connectParent(t *testing.T, status int, greeting string) (addr string, seen chan *http.Request) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen = make(chan *http.Request, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				seen <- req
				if status != http.StatusOK {
					_, _ = fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n", status, http.StatusText(status))
					return
				}
				up, err := net.Dial("tcp", req.Host)
				if err != nil {
					_, _ = io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\n\r\n")
					return
				}
				defer up.Close()
				_, _ = io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n"+greeting)
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), seen
}

func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func TestTunnelThroughCONNECT(t *testing.T) {
	target := echo(t)
	addr, seen := connectParent(t, http.StatusOK, "early")
	p, err := New("http://alice:pw@"+addr, Options{DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := p.Tunnel(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := <-seen
	if req.Method != http.MethodConnect || req.Host != target || req.Header.Get("Proxy-Authorization") != "Basic YWxpY2U6cHc=" {
		t.Errorf("the parent got %s %s %v", req.Method, req.Host, req.Header)
	}
	if _, err := io.WriteString(c, "ping"); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len("earlyping"))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "earlyping" {
		t.Errorf("read %q, %v: bytes after the parent's answer must come first", got, err)
	}
}

func TestTunnelFailures(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	for _, status := range []int{http.StatusForbidden, http.StatusProxyAuthRequired} {
		addr, _ := connectParent(t, status, "")
		p, _ := New("http://"+addr, Options{})
		_, err := p.Tunnel(ctx, "example.test:443")
		var pe *Error
		if !errors.As(err, &pe) || pe.Status == "" || !strings.HasPrefix(err.Error(), "upstream proxy refused: ") {
			t.Errorf("status %d: %v", status, err)
		}
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()
	p, _ := New("http://"+closed, Options{})
	_, err := p.Tunnel(ctx, "example.test:443")
	var pe *Error
	if !errors.As(err, &pe) || pe.Status != "" || !strings.HasPrefix(err.Error(), "upstream proxy unreachable: ") {
		t.Errorf("closed parent: %v", err)
	}
}

func TestChainFor(t *testing.T) {
	c, err := NewChain("http://proxy.corp:3128", []string{"direct.test", "*.internal.test", "10.0.0.0/8"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		host   string
		port   int
		parent bool
	}{
		{"example.com", 443, true},
		{"direct.test", 443, false},
		{"sub.direct.test", 443, false},
		{"a.internal.test", 80, false},
		{"internal.test.example.com", 80, true},
		{"10.1.2.3", 22, false},
		{"11.1.2.3", 22, true},
		{"localhost", 80, false},
		{"127.0.0.1", 80, false},
	} {
		for _, plain := range []bool{false, true} {
			if got := c.For(tt.host, tt.port, plain) != nil; got != tt.parent {
				t.Errorf("For(%s:%d, plain %v) parent = %v, want %v", tt.host, tt.port, plain, got, tt.parent)
			}
		}
	}
	var none *Chain
	if none.For("example.com", 443, false) != nil || none.String() != "none" {
		t.Error("a nil chain chains")
	}
}

func TestEnvChain(t *testing.T) {
	env := FromEnvironment(func(k string) string {
		return map[string]string{"https_proxy": "http://tunnels.corp:3128", "ALL_PROXY": "socks5://all.corp", "NO_PROXY": "direct.test"}[k]
	})
	c, err := NewEnvChain(env, []string{"also-direct.test"}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.For("example.com", 443, false); got == nil || got.String() != "http://tunnels.corp:3128" {
		t.Errorf("tunnel parent %v", got)
	}
	if got := c.For("example.com", 80, true); got == nil || got.String() != "socks5://all.corp:1080" {
		t.Errorf("plain parent %v (ALL_PROXY when HTTP_PROXY is unset)", got)
	}
	if c.For("direct.test", 443, false) != nil || c.For("also-direct.test", 443, false) != nil {
		t.Error("NO_PROXY and no_upstream destinations are chained")
	}
	if c, err := NewEnvChain(Env{}, nil, Options{}); c != nil || err != nil {
		t.Errorf("no variables: %v, %v", c, err)
	}
	if _, err := NewEnvChain(Env{HTTPS: "ftp://x:topsecret@y"}, nil, Options{}); err == nil || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("a bad HTTPS_PROXY: %v", err)
	}
}

func TestIsRefusal(t *testing.T) {
	for _, tt := range []struct {
		code   int
		header http.Header
		want   bool
	}{
		{407, nil, true},
		{403, http.Header{"X-Squid-Error": {"ERR_ACCESS_DENIED 0"}}, true},
		{502, http.Header{"Proxy-Status": {`corp-proxy; error=connection_refused`}}, true},
		{403, nil, false}, // the destination's own
		{200, http.Header{"X-Squid-Error": {"x"}}, false},
	} {
		resp := &http.Response{StatusCode: tt.code, Header: tt.header}
		if resp.Header == nil {
			resp.Header = http.Header{}
		}
		if got := IsRefusal(resp); got != tt.want {
			t.Errorf("%d %v: %v, want %v", tt.code, tt.header, got, tt.want)
		}
	}
}

// TestTunnelThroughHTTPS: an https:// parent is reached over TLS,
// verified against upstream_ca; without that CA the handshake fails and
// says so.
func TestTunnelThroughHTTPS(t *testing.T) {
	target := echo(t)
	plainAddr, _ := connectParent(t, http.StatusOK, "")
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "parent.test"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // TLS in front of the plain CONNECT parent
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				up, err := net.Dial("tcp", plainAddr)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { _, _ = io.Copy(up, c) }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	p, err := New("https://"+ln.Addr().String(), Options{CAFile: caFile})
	if err != nil {
		t.Fatal(err)
	}
	c, err := p.Tunnel(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(c, "ping")
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
		t.Errorf("echo through the https:// parent: %q, %v", got, err)
	}
	c.Close()
	untrusted, _ := New("https://"+ln.Addr().String(), Options{})
	if _, err := untrusted.Tunnel(ctx, target); err == nil || !strings.Contains(err.Error(), "upstream proxy unreachable: TLS with") {
		t.Errorf("a parent with an unknown CA: %v", err)
	}
}
