package proxy

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/tlsca"
)

// inspectFixture is a proxy inspecting allowed.test (GET and HEAD only
// inside), a TLS upstream (HTTP/2 enabled) that echoes, and a client
// that trusts the inspection CA.
type inspectFixture struct {
	h      *harness
	d      *fakeDecider
	up     *httptest.Server
	upCA   *tlsca.CA // issues the upstream's certificates, by SNI
	port   string
	caPool *x509.CertPool
}

func newInspectFixture(t *testing.T) *inspectFixture {
	t.Helper()
	ca, err := tlsca.New("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Proto", r.Proto)
		fmt.Fprintf(w, "%s %s body=%s", r.Method, r.URL.Path, body)
	}))
	upCA, err := tlsca.New("upstream CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	up.EnableHTTP2 = true
	up.TLS = &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return upCA.Leaf(h.ServerName) }}
	up.StartTLS()
	t.Cleanup(up.Close)
	roots := x509.NewCertPool()
	roots.AddCert(upCA.Certificate())
	d := &fakeDecider{}
	d.fn = func(in engine.Input) (engine.Decision, error) {
		switch {
		case in.Host != "allowed.test" && in.Host != "passthrough.test":
			return engine.Decision{Reason: "no rule allows " + in.Host, ID: "d-deny"}, nil
		case in.Scheme == engine.SchemeHTTPS && in.Method != engine.MethodConnect && in.Method != "GET" && in.Method != "HEAD":
			return engine.Decision{Reason: "method " + in.Method + " is not allowed", Rule: "methods", ID: "d-method"}, nil
		}
		return engine.Decision{Allow: true, Reason: "ok", Inspect: in.Host == "allowed.test", ID: "d-ok"}, nil
	}
	cfg := testConfig()
	cfg.Hosts["passthrough.test"] = cfg.Hosts["allowed.test"]
	cfg.Inspect = &Inspection{CA: ca, UpstreamRoots: roots}
	h := startProxy(t, cfg, d)
	caPool := x509.NewCertPool()
	caPool.AddCert(ca.Certificate())
	return &inspectFixture{h: h, d: d, up: up, upCA: upCA, port: portOf(t, up.URL), caPool: caPool}
}

func (fx *inspectFixture) client(t *testing.T, h2 bool) *http.Client {
	t.Helper()
	tr := &http.Transport{
		Proxy:             http.ProxyURL(&url.URL{Scheme: "http", Host: fx.h.httpAddr}),
		TLSClientConfig:   &tls.Config{RootCAs: fx.caPool},
		ForceAttemptHTTP2: h2,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// TestInspect: an inspected tunnel's requests are decided one by one as
// https, with method, path, headers and tls.inspected; denies are the
// plain-HTTP 403; HTTP/2 is spoken on both sides when offered.
func TestInspect(t *testing.T) {
	fx := newInspectFixture(t)
	base := "https://allowed.test:" + fx.port
	for _, h2 := range []bool{false, true} {
		c := fx.client(t, h2)
		resp, err := c.Get(base + "/a/../x?q=1")
		if err != nil {
			t.Fatalf("h2=%v: GET: %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wantProto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
		if resp.StatusCode != 200 || string(body) != "GET /x body=" || resp.Proto != wantProto || resp.Header.Get("X-Seen-Proto") != "HTTP/2.0" {
			t.Errorf("h2=%v: GET: %s %s %q (upstream %s)", h2, resp.Status, resp.Proto, body, resp.Header.Get("X-Seen-Proto"))
		}
		if resp.Header.Get("X-Seen-Host") != "allowed.test:"+fx.port {
			t.Errorf("h2=%v: upstream saw Host %q", h2, resp.Header.Get("X-Seen-Host"))
		}
		resp, err = c.Post(base+"/upload", "text/plain", strings.NewReader("secret data"))
		if err != nil {
			t.Fatalf("h2=%v: POST: %v", h2, err)
		}
		body, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || resp.Header.Get(HeaderProxyError) != blockedByPolicy ||
			resp.Header.Get(HeaderDecisionID) != "d-method" || !strings.Contains(string(body), "method POST is not allowed") {
			t.Errorf("h2=%v: POST: %s %v %q", h2, resp.Status, resp.Header, body)
		}
	}
	var inner []engine.Input
	for _, in := range fx.d.calls() {
		if in.Scheme == engine.SchemeHTTPS && in.Method != engine.MethodConnect {
			inner = append(inner, in)
		}
	}
	if len(inner) != 4 {
		t.Fatalf("%d inner decisions, want 4: %+v", len(inner), inner)
	}
	in := inner[0]
	if in.Host != "allowed.test" || in.Path != "/x" || in.TLS == nil || !in.TLS.Inspected || in.TLS.SNI != "allowed.test" ||
		in.Headers["user-agent"] == "" || in.Client.Listener != ListenerHTTP {
		t.Errorf("inner decision input: %+v (tls %+v)", in, in.TLS)
	}
}

// TestInspectPassthroughUnchanged: a tunnel whose decision does not ask
// for inspection shows the upstream's own certificate.
func TestInspectPassthroughUnchanged(t *testing.T) {
	fx := newInspectFixture(t)
	c, err := net.Dial("tcp", fx.h.httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT passthrough.test:%s HTTP/1.1\r\nHost: passthrough.test:%s\r\n\r\n", fx.port, fx.port)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(c, &tls.Config{ServerName: "passthrough.test", InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	want, _ := fx.upCA.Leaf("passthrough.test")
	if got := tc.ConnectionState().PeerCertificates[0]; !got.Equal(want.Leaf) {
		t.Errorf("passthrough showed %s (issuer %s), not the upstream's certificate", got.Subject, got.Issuer)
	}
}

// TestInspectRefusals: a Host or :authority naming another host is a 400;
// request smuggling inside is a 400, never a second request upstream; an
// SNI naming another host cuts the tunnel; an upstream whose certificate
// does not verify is a 502 with the cause; a policy that asks to inspect
// without a CA configured is denied.
func TestInspectRefusals(t *testing.T) {
	fx := newInspectFixture(t)
	dial := func(t *testing.T, sni string, protos ...string) *tls.Conn {
		t.Helper()
		c, err := net.Dial("tcp", fx.h.httpAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		fmt.Fprintf(c, "CONNECT allowed.test:%s HTTP/1.1\r\n\r\n", fx.port)
		br := bufio.NewReader(c)
		if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 200 {
			t.Fatalf("CONNECT: %v %v", resp, err)
		}
		if protos == nil {
			protos = []string{"http/1.1"}
		}
		tc := tls.Client(c, &tls.Config{ServerName: sni, RootCAs: fx.caPool, NextProtos: protos})
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		return tc
	}
	for name, req := range map[string]string{
		"other host":  "GET / HTTP/1.1\r\nHost: other.test:%s\r\n\r\n",
		"two hosts":   "GET / HTTP/1.1\r\nHost: allowed.test:%[1]s\r\nHost: other.test:%[1]s\r\n\r\n",
		"CL and TE":   "POST / HTTP/1.1\r\nHost: allowed.test:%s\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		"http scheme": "GET http://allowed.test:%[1]s/ HTTP/1.1\r\nHost: allowed.test:%[1]s\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			tc := dial(t, "allowed.test")
			fmt.Fprintf(tc, req, fx.port)
			resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %s, want 400", resp.Status)
			}
		})
	}
	for _, in := range fx.d.calls() {
		if in.Path == "/smuggled" {
			t.Error("a smuggled request was decided (and could reach upstream)")
		}
	}

	t.Run("HTTP/2 :authority of another host", func(t *testing.T) {
		for _, authority := range []string{"other.test:" + fx.port, "allowed.test:1", ""} {
			cc, err := (&http2.Transport{}).NewClientConn(dial(t, "allowed.test", "h2")) // a 400 closes the connection
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest("GET", "https://allowed.test:"+fx.port+"/", nil)
			req.Host = authority
			resp, err := cc.RoundTrip(req)
			if err != nil {
				t.Fatalf(":authority %q: %v", authority, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest && authority != "" {
				t.Errorf(":authority %q: status %s, want 400", authority, resp.Status)
			}
		}
	})

	t.Run("SNI of another host", func(t *testing.T) {
		tc := dial(t, "other.test")
		if err := tc.Handshake(); err == nil {
			t.Error("the handshake with another SNI completed")
		}
	})

	t.Run("upstream certificate not trusted", func(t *testing.T) {
		other := newInspectFixture(t)
		other.h.p.cfg.Inspect.UpstreamRoots = x509.NewCertPool() // trusts nothing
		resp, err := other.client(t, false).Get("https://allowed.test:" + other.port + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "certificate") {
			t.Errorf("%s %q, want a 502 naming the certificate", resp.Status, body)
		}
	})

	t.Run("upstream certificate expired", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(9), Subject: pkix.Name{CommonName: "allowed.test"},
			DNSNames: []string{"allowed.test"}, NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		expired := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "never") }))
		expired.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
		expired.StartTLS()
		t.Cleanup(expired.Close)
		cert, _ := x509.ParseCertificate(der)
		fx.h.p.cfg.Inspect.UpstreamRoots.AddCert(cert) // trusted, but expired
		resp, err := fx.client(t, false).Get("https://allowed.test:" + portOf(t, expired.URL) + "/")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadGateway || !strings.Contains(string(body), "expired") {
			t.Errorf("%s %q, want a 502 saying the certificate expired", resp.Status, body)
		}
	})

	t.Run("inspection not configured", func(t *testing.T) {
		cfg := testConfig()
		d := &fakeDecider{fn: func(in engine.Input) (engine.Decision, error) {
			return engine.Decision{Allow: true, Reason: "ok", Inspect: true, ID: "d"}, nil
		}}
		h := startProxy(t, cfg, d)
		got := rawRequest(t, h.httpAddr, "CONNECT allowed.test:443 HTTP/1.1\r\n\r\n")
		if !strings.HasPrefix(got, "HTTP/1.1 403 ") || !strings.Contains(got, "HTTPS inspection is not configured") {
			t.Errorf("answer %q, want a 403 naming the missing inspection", got)
		}
	})
}

// TestInspectStreams: bodies stream through an inspected tunnel in both
// directions — the upstream sees the first part of an upload before the
// client sends the rest, and the client gets the first part of a download
// before the upstream writes the rest (either would deadlock if regate
// buffered a whole body) — over HTTP/1.1 and HTTP/2, with
// Expect: 100-continue.
func TestInspectStreams(t *testing.T) {
	ca, _ := tlsca.New("test CA", time.Hour)
	upCA, _ := tlsca.New("upstream CA", time.Hour)
	gotFirst := make(chan struct{}, 1)
	sentFirst := make(chan struct{}, 1)
	clientGotFirst := make(chan struct{}, 1)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/upload":
			buf := make([]byte, 5)
			if _, err := io.ReadFull(r.Body, buf); err != nil || string(buf) != "first" {
				http.Error(w, "bad first part", 400)
				return
			}
			gotFirst <- struct{}{}
			rest, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "got first and %d more", len(rest))
		case "/download":
			io.WriteString(w, "first")
			w.(http.Flusher).Flush()
			sentFirst <- struct{}{}
			select {
			case <-clientGotFirst:
				io.WriteString(w, " then the rest")
			case <-time.After(10 * time.Second):
				io.WriteString(w, " (the client never got the first part)")
			}
		}
	}))
	up.EnableHTTP2 = true
	up.TLS = &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return upCA.Leaf(h.ServerName) }}
	up.StartTLS()
	t.Cleanup(up.Close)
	roots := x509.NewCertPool()
	roots.AddCert(upCA.Certificate())
	cfg := testConfig()
	cfg.Inspect = &Inspection{CA: ca, UpstreamRoots: roots}
	h := startProxy(t, cfg, &fakeDecider{fn: func(in engine.Input) (engine.Decision, error) {
		return engine.Decision{Allow: in.Host == "allowed.test", Reason: "test", Inspect: true, ID: "d"}, nil
	}})
	caPool := x509.NewCertPool()
	caPool.AddCert(ca.Certificate())
	base := "https://allowed.test:" + portOf(t, up.URL)
	for _, h2 := range []bool{false, true} {
		tr := &http.Transport{
			Proxy:                 http.ProxyURL(&url.URL{Scheme: "http", Host: h.httpAddr}),
			TLSClientConfig:       &tls.Config{RootCAs: caPool},
			ForceAttemptHTTP2:     h2,
			ExpectContinueTimeout: 5 * time.Second,
		}
		c := &http.Client{Transport: tr, Timeout: 20 * time.Second}

		pr, pw := io.Pipe()
		go func() {
			io.WriteString(pw, "first")
			select {
			case <-gotFirst:
				pw.Write(make([]byte, 1<<20))
				pw.Close()
			case <-time.After(10 * time.Second):
				pw.CloseWithError(fmt.Errorf("the upstream never got the first part"))
			}
		}()
		req, _ := http.NewRequest("POST", base+"/upload", pr)
		req.Header.Set("Expect", "100-continue")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("h2=%v: upload: %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != fmt.Sprintf("got first and %d more", 1<<20) {
			t.Errorf("h2=%v: upload: %s %q", h2, resp.Status, body)
		}

		resp, err = c.Get(base + "/download")
		if err != nil {
			t.Fatalf("h2=%v: download: %v", h2, err)
		}
		first := make([]byte, 5)
		if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first" {
			t.Fatalf("h2=%v: first part %q %v", h2, first, err)
		}
		<-sentFirst
		clientGotFirst <- struct{}{}
		rest, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(rest) != " then the rest" {
			t.Errorf("h2=%v: download rest %q", h2, rest)
		}
		tr.CloseIdleConnections()
	}
}

// TestInspectTrailers: an upstream's trailers reach the client through an
// inspected tunnel, over HTTP/1.1 and HTTP/2.
func TestInspectTrailers(t *testing.T) {
	fx := newInspectFixture(t)
	fx.up.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "c0ffee")
	})
	for _, h2 := range []bool{false, true} {
		resp, err := fx.client(t, h2).Get("https://allowed.test:" + fx.port + "/t")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(body) != "body" || resp.Trailer.Get("X-Checksum") != "c0ffee" {
			t.Errorf("h2=%v: body %q, trailers %v", h2, body, resp.Trailer)
		}
	}
}
