package proxy

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/klauspost/compress/zstd"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/secrets"
	"github.com/regate/regate/internal/tlsca"
)

const testSecretValue = "ghp_abcdefghijklmnopqrstuvwxyzABCDEF0123"

// otherSecretValue is the value of a second secret, bound elsewhere.
const otherSecretValue = "sk-proj-0123456789abcdefghijklmnopqrstuvwxyzABCD"

// TestSecretSwap: a host a secret is bound to is inspected even when the
// decision does not ask for it; on an allowed request the upstream gets
// the real value, the policy and the client only the placeholder; a
// placeholder left where nothing replaces it, or sent over plain HTTP,
// is the proxy's own deny.
func TestSecretSwap(t *testing.T) {
	ca, err := tlsca.New("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	upCA, err := tlsca.New("upstream CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	received := make(chan string, 16) // what the upstream got, unscrubbed
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := fmt.Sprintf("auth=%s path=%s query=%s", r.Header.Get("Authorization"), r.URL.EscapedPath(), r.URL.RawQuery)
		received <- got + " encoding=" + r.Header.Get("Accept-Encoding")
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		// A server that encodes its answer although not asked to.
		if enc := r.URL.Query().Get("enc"); enc != "" {
			w.Header().Set("Content-Encoding", enc)
			w.Write(encode(t, enc, got))
			return
		}
		fmt.Fprint(w, got)
	}))
	up.EnableHTTP2 = true
	up.TLS = &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return upCA.Leaf(h.ServerName) }}
	up.StartTLS()
	t.Cleanup(up.Close)
	roots := x509.NewCertPool()
	roots.AddCert(upCA.Certificate())
	specs, err := secrets.Merge(nil, []string{"gh=GH@allowed.test", "oa=OA@bound.test"})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := secrets.Load(specs, func(name string) string {
		if name == "OA" {
			return otherSecretValue
		}
		return testSecretValue
	})
	if err != nil {
		t.Fatal(err)
	}
	ph := loaded[0].Placeholder()
	d := &fakeDecider{fn: func(in engine.Input) (engine.Decision, error) {
		return engine.Decision{Allow: true, Reason: "ok", ID: "d-ok"}, nil // never asks to inspect
	}}
	cfg := testConfig()
	cfg.Hosts["bound.test"] = cfg.Hosts["allowed.test"]
	cfg.Inspect = &Inspection{CA: ca, UpstreamRoots: roots}
	set := secrets.NewSet(loaded)
	cfg.Secrets = secrets.ForRun(set)
	h := startProxy(t, cfg, d)
	pool := x509.NewCertPool()
	pool.AddCert(ca.Certificate())
	port := portOf(t, up.URL)
	get := func(h2 bool, target string, header ...string) (int, string, http.Header) {
		t.Helper()
		tr := &http.Transport{
			Proxy:             http.ProxyURL(&url.URL{Scheme: "http", Host: h.httpAddr}),
			TLSClientConfig:   &tls.Config{RootCAs: pool},
			ForceAttemptHTTP2: h2,
		}
		defer tr.CloseIdleConnections()
		r, err := http.NewRequest("GET", target, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(header); i += 2 {
			r.Header.Add(header[i], header[i+1])
		}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Do(r)
		if err != nil {
			t.Fatalf("GET %s: %v", target, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), resp.Header
	}
	base := "https://allowed.test:" + port
	for _, h2 := range []bool{false, true} {
		code, body, hdr := get(h2, base+"/t/"+ph+"?k="+ph, "Authorization", "Bearer "+ph, "Accept-Encoding", "gzip")
		want := fmt.Sprintf("auth=Bearer %s path=/t/%s query=k=%s", testSecretValue, testSecretValue, testSecretValue)
		if got := <-received; got != want+" encoding=" {
			t.Fatalf("h2=%v: upstream got %q, want %q and no Accept-Encoding", h2, got, want)
		}
		// The echo in the body reads as the placeholder.
		if want := strings.ReplaceAll(want, testSecretValue, ph); code != 200 || body != want {
			t.Fatalf("h2=%v: %d %q, want %q", h2, code, body, want)
		}
		if hdr.Get("X-Echo") != "Bearer "+ph {
			t.Errorf("h2=%v: the echoed header is not scrubbed: %q", h2, hdr.Get("X-Echo"))
		}
		code, body, hdr = get(h2, base+"/x", "Authorization", "Bearer "+ph, "X-Other", ph)
		if code != http.StatusForbidden || strings.Contains(body, testSecretValue) || !strings.Contains(body, "gh") {
			t.Errorf("h2=%v: placeholder in another header: %d %q", h2, code, body)
		}
		_ = hdr
	}
	code, body, _ := get(false, "http://allowed.test:"+port+"/x", "Authorization", "Bearer "+ph)
	if code != http.StatusForbidden || !strings.Contains(body, "only over HTTPS") {
		t.Errorf("plain HTTP: %d %q", code, body)
	}
	// A real value the command holds goes nowhere but its hosts, whatever
	// the policy says, and the policy sees the placeholder.
	code, body, _ = get(false, "http://other.test:"+port+"/r/"+testSecretValue+"?k="+testSecretValue, "X-Token", testSecretValue)
	if code != http.StatusForbidden || !strings.Contains(body, "the real value of secret gh, which is not for other.test") || strings.Contains(body, testSecretValue) {
		t.Errorf("real value elsewhere: %d %q", code, body)
	}
	// An answer encoded anyway is decoded and scrubbed; one regate cannot
	// decode is refused.
	for _, enc := range []string{"gzip", "deflate", "zstd", "br"} {
		code, body, hdr := get(false, base+"/e?enc="+enc, "Authorization", "Bearer "+ph)
		<-received
		if enc == "br" {
			if code != http.StatusBadGateway || !strings.Contains(body, `"br"-encoded, which regate cannot decode`) {
				t.Errorf("br: %d %q", code, body)
			}
			continue
		}
		if want := "auth=Bearer " + ph + " path=/e query=enc=" + enc; code != 200 || body != want || hdr.Get("Content-Encoding") != "" {
			t.Errorf("%s: %d %q (Content-Encoding %q), want %q decoded", enc, code, body, hdr.Get("Content-Encoding"), want)
		}
	}
	// Nor to the host of another secret.
	code, body, _ = get(false, base[:len("https://")]+"bound.test:"+port+"/x", "Authorization", "Bearer "+testSecretValue)
	if code != http.StatusForbidden || !strings.Contains(body, "the real value of secret gh, which is not for bound.test") {
		t.Errorf("real value to another secret's host: %d %q", code, body)
	}
	var seen int
	for _, in := range d.calls() {
		if strings.Contains(fmt.Sprint(in), testSecretValue) {
			t.Fatalf("the policy saw the real value: %+v", in)
		}
		if in.Host == "bound.test" {
			if in.Method == "CONNECT" {
				continue
			}
			if len(in.Secrets) != 1 || in.Secrets[0] != "gh" || in.Headers["authorization"] != "Bearer "+ph {
				t.Errorf("input of the real value to another secret's host: %+v", in)
			}
			continue
		}
		if in.Host == "other.test" {
			if len(in.Secrets) != 1 || in.Headers["x-token"] != ph || in.Path != "/r/"+ph {
				t.Errorf("input of the real value: %+v", in)
			}
			continue
		}
		if in.Method == "GET" {
			seen++
			if len(in.Secrets) != 1 || in.Secrets[0] != "gh" || in.Headers["authorization"] != "Bearer "+ph {
				t.Errorf("input %+v", in)
			}
		}
	}
	if n := testutil.ToFloat64(h.p.m.secretSwaps.WithLabelValues("gh")); n != 6 {
		t.Errorf("regate_secret_swaps_total{secret=\"gh\"} = %v, want 6 (the two swapped requests and the four encoded answers)", n)
	}
	if seen != 9 {
		t.Errorf("%d inner requests decided, want 5", seen)
	}
	if uses := set.Uses(); len(uses) != 1 || uses[0].Count != 6 || uses[0].Host != "allowed.test" {
		t.Errorf("uses %+v", uses)
	}
}

// encode is text encoded as enc ("br": not really, regate cannot tell).
func encode(t *testing.T, enc, text string) []byte {
	var b bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "deflate":
		w = zlib.NewWriter(&b)
	case "zstd":
		zw, err := zstd.NewWriter(&b)
		if err != nil {
			t.Error(err)
		}
		w = zw
	default:
		return []byte(text)
	}
	_, _ = io.WriteString(w, text)
	_ = w.Close()
	return b.Bytes()
}
