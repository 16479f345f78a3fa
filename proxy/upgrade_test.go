package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/net/websocket"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/tlsca"
)

// wsEcho echoes each WebSocket message, prefixed with the path.
func wsEcho(ws *websocket.Conn) {
	var msg string
	for websocket.Message.Receive(ws, &msg) == nil {
		_ = websocket.Message.Send(ws, ws.Request().URL.Path+": "+msg)
	}
}

// connectThrough opens a CONNECT tunnel to target through the proxy at
// addr.
func connectThrough(t *testing.T, addr, target string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", target, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT %s: %v %v", target, resp, err)
	}
	return c
}

func wsRoundTrip(t *testing.T, conn net.Conn, url string) string {
	t.Helper()
	cfg, err := websocket.NewConfig(url, "http://allowed.test/")
	if err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	ws, err := websocket.NewClient(cfg, conn)
	if err != nil {
		t.Fatalf("WebSocket handshake %s: %v", url, err)
	}
	if err := websocket.Message.Send(ws, "hello"); err != nil {
		t.Fatal(err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestWebSocketUpgrades: an allowed WebSocket handshake is relayed and the
// connection switches protocols — inside a plain tunnel (ws://, whose
// HTTP is decided per request) and inside an inspected one (wss://); a
// denied handshake gets the 403.
func TestWebSocketUpgrades(t *testing.T) {
	plain := httptest.NewServer(websocket.Handler(wsEcho))
	t.Cleanup(plain.Close)
	ca, _ := tlsca.New("test CA", time.Hour)
	upCA, _ := tlsca.New("upstream CA", time.Hour)
	secure := httptest.NewUnstartedServer(websocket.Handler(wsEcho))
	secure.TLS = &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) { return upCA.Leaf(h.ServerName) }}
	secure.StartTLS()
	t.Cleanup(secure.Close)
	roots := x509.NewCertPool()
	roots.AddCert(upCA.Certificate())
	cfg := testConfig()
	cfg.Inspect = &Inspection{CA: ca, UpstreamRoots: roots}
	d := &fakeDecider{fn: func(in engine.Input) (engine.Decision, error) {
		if in.Host != "allowed.test" || in.Path == "/denied" {
			return engine.Decision{Reason: "no", ID: "d-no"}, nil
		}
		return engine.Decision{Allow: true, Reason: "ok", Inspect: in.Port == mustPort(t, secure.URL), ID: "d-ok"}, nil
	}}
	h := startProxy(t, cfg, d)

	pp, sp := portOf(t, plain.URL), portOf(t, secure.URL)
	if got := wsRoundTrip(t, connectThrough(t, h.httpAddr, "allowed.test:"+pp), "ws://allowed.test:"+pp+"/ws"); got != "/ws: hello" {
		t.Errorf("ws:// in a tunnel: %q", got)
	}
	caPool := x509.NewCertPool()
	caPool.AddCert(ca.Certificate())
	tc := tls.Client(connectThrough(t, h.httpAddr, "allowed.test:"+sp), &tls.Config{ServerName: "allowed.test", RootCAs: caPool, NextProtos: []string{"http/1.1"}})
	if got := wsRoundTrip(t, tc, "wss://allowed.test:"+sp+"/wss"); got != "/wss: hello" {
		t.Errorf("wss:// in an inspected tunnel: %q", got)
	}

	c := connectThrough(t, h.httpAddr, "allowed.test:"+pp)
	fmt.Fprintf(c, "GET /denied HTTP/1.1\r\nHost: allowed.test:%s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", pp)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("denied handshake: %s %q", resp.Status, body)
	}
}

func mustPort(t *testing.T, u string) int {
	t.Helper()
	var port int
	if _, err := fmt.Sscanf(portOf(t, u), "%d", &port); err != nil {
		t.Fatal(err)
	}
	return port
}
