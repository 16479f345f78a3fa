package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"github.com/regate/regate/internal/testenv"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIsolateTransparent: programs that ignore the proxy variables resolve
// through regate's fake-IP DNS, and every TCP connection is decided on the
// name it asked for, with the answers the proxy gives; UDP is refused at
// once and named in the summary; every flow is a decision-log event that
// carries the fake address.
func TestIsolateTransparent(t *testing.T) {
	need(t, "curl", "getent", "python3", "node", "dig", "nslookup", "sh")
	needIsolation(t)
	up := newUpstream(t)
	p := up.port()
	echo := lineEchoServer(t)
	tlsUp, caFile := newTLSUpstream(t, "allowed.test", "denied.test")
	closed := closedPort(t)
	tp := tlsUp.port()
	dir := t.TempDir()
	writeFile(t, dir, "raw.py", `
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
try:
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(b"ping\n")
    print("raw %s: %s" % (host, s.recv(100).decode().strip()))
except OSError as e:
    print("raw %s: %s" % (host, type(e).__name__))
`)
	writeFile(t, dir, "udp.py", `
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("8.8.8.8", 443))
s.settimeout(10)
start = time.monotonic()
for _ in range(3):
    try:
        s.send(b"\x00quic")
        s.recv(100)
        print("udp: answered")
    except OSError as e:
        print("udp: %s in %s" % (type(e).__name__, "under 5s" if time.monotonic() - start < 5 else "over 5s"))
`)
	writeFile(t, dir, "fetch.js", `
const go = async (name) => {
  try {
    const r = await fetch("http://" + name + ":`+p+`/node");
    console.log("node " + name + ": " + r.status + " " + (await r.text()).trim());
  } catch (e) {
    console.log("node " + name + ": " + (e.cause && e.cause.code));
  }
};
(async () => { await go("allowed.test"); await go("denied.test"); })();
`)
	script := `
code() { curl -sS -o /dev/null -w '%{http_code}' --noproxy '*' "$@" 2>/dev/null; echo " $?"; }
echo "link type: $(cat /sys/class/net/regate0/type)"
echo "getent: $(getent ahostsv4 x.test | head -1)"
echo "dig: $(dig +short @8.8.8.8 nothing.invalid A)"
echo "dig tcp: $(dig +short +tcp @8.8.8.8 nothing.invalid A)"
echo "dig aaaa: $(dig +short @1.1.1.1 nothing.invalid AAAA)"
echo "dig https: [$(dig +short @8.8.8.8 allowed.test HTTPS)]"
echo "nslookup: $(nslookup allowed.test 9.9.9.9 | grep -c 'Address: 198.1')"
echo "allowed: $(curl -sS --noproxy '*' http://allowed.test:` + p + `/direct)"
echo "allowed v6: $(curl -sS -6 --noproxy '*' http://allowed.test:` + p + `/v6)"
echo "denied 80: $(curl -sS -i --noproxy '*' http://denied.test/ | tr -d '\r' | grep -E '^HTTP|^X-Proxy-Error|^regate:' | tr '\n' '|')"
echo "denied other port: $(code http://denied.test:` + p + `/)"
echo "upstream refused: $(code http://allowed.test:` + closed + `/)"
echo "real address: $(code http://192.0.2.1:` + p + `/)"
echo "tls: $(curl -sS --cacert ` + caFile + ` --noproxy '*' https://allowed.test:` + tp + `/tls)"
echo "tls fronted: $(code --cacert ` + caFile + ` --connect-to denied.test:` + tp + `:allowed.test:` + tp + ` https://denied.test:` + tp + `/)"
python3 ` + dir + `/raw.py allowed.test ` + echo + `
python3 ` + dir + `/raw.py denied.test ` + echo + `
python3 ` + dir + `/udp.py
node ` + dir + `/fetch.js
`
	logPath := filepath.Join(dir, "decisions.jsonl")
	res := isolated(t, []string{"--decision-log", logPath}, "sh", "-c", script)
	wantCode(t, res, 0)
	for _, want := range []string{
		"link type: 65534", // ARPHRD_NONE: a TUN device, for a root caller
		"getent: 198.1",
		"dig: 198.1",
		"dig tcp: 198.1",
		"dig aaaa: fd00:7267::",
		"dig https: []",
		"nslookup: 1",
		"allowed: hello from upstream: GET /direct",
		"allowed v6: hello from upstream: GET /v6",
		"denied 80: HTTP/1.1 403 no rule allows denied.test|X-Proxy-Error: blocked-by-policy|regate: connection to denied.test:80 blocked: no rule allows denied.test",
		"denied other port: 000 7", // curl: connection refused
		"upstream refused: 000 7",  // the SYN is refused as the upstream's was
		"real address: 000 7",      // decided on the address (host_is_ip): no rule allows it
		"tls: hello from TLS upstream: GET /tls",
		"tls fronted: 000 35", // curl: the handshake is cut
		"raw allowed.test: ping",
		"raw denied.test: ConnectionRefusedError",
		"udp: ConnectionRefusedError in under 5s",
		"node allowed.test: 200 hello from upstream: GET /node",
		"node denied.test: ECONNREFUSED",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", want, res.stdout, res.stderr)
		}
	}
	for _, want := range []string{
		"regate: blocked 3 UDP packets to 8.8.8.8:443 — UDP is not allowed in the sandbox",
		"to denied.test:80 — no rule allows denied.test",
		"to denied.test:" + p + " — no rule allows denied.test",
		"to allowed.test:" + closed + " failed",
		"regate: blocked 1 connection to 192.0.2.1:" + p + " — no rule allows 192.0.2.1",
		"regate: blocked 1 connection to denied.test:" + tp + " — no rule allows denied.test", // the SNI's decision
	} {
		if !strings.Contains(res.stderr, want) {
			t.Errorf("summary lacks %q\n%s", want, res.stderr)
		}
	}
	checkTransparentEvents(t, logPath, p)
}

// checkTransparentEvents: the transparent flows' events name the listener,
// scheme tcp and the fake address the name came from; dropped UDP is one
// deny event of rule isolate:udp.
func checkTransparentEvents(t *testing.T, logPath, port string) {
	t.Helper()
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var tcpAllowed, udp int
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var ev struct {
			Input struct {
				Host        string `json:"host"`
				Port        int    `json:"port"`
				Scheme      string `json:"scheme"`
				Transparent *struct {
					Addr string `json:"addr"`
				} `json:"transparent"`
				Client struct {
					Listener string `json:"listener"`
				} `json:"client"`
			} `json:"input"`
			Result struct {
				Allow bool   `json:"allow"`
				Rule  string `json:"rule"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("event %q: %v", line, err)
		}
		in := ev.Input
		switch {
		case in.Scheme == "tcp" && in.Host == "allowed.test" && fmt.Sprint(in.Port) == port && ev.Result.Allow:
			tcpAllowed++
			if in.Client.Listener != "transparent" || in.Transparent == nil || !strings.HasPrefix(in.Transparent.Addr, "198.1") && !strings.HasPrefix(in.Transparent.Addr, "fd00:7267::") {
				t.Errorf("transparent flow event: %s", line)
			}
		case in.Scheme == "udp":
			udp++
			if in.Host != "8.8.8.8" || in.Port != 443 || ev.Result.Allow || ev.Result.Rule != "isolate:udp" || in.Transparent != nil {
				t.Errorf("UDP event: %s", line)
			}
		}
	}
	if tcpAllowed < 2 || udp != 1 {
		t.Errorf("%d allowed transparent flows to allowed.test:%s (want curl's two and node's), %d UDP events (want 1, rate-limited)\n%s", tcpAllowed, port, udp, data)
	}
}

// TestIsolateTransparentVeth: a caller that cannot open /dev/net/tun
// (mode 0600 here) gets the transparent path over a veth pair read with
// AF_PACKET from a second namespace: names resolve to fake addresses, TCP
// over IPv4 and IPv6 is decided by name, other names are refused.
func TestIsolateTransparentVeth(t *testing.T) {
	need(t, "runuser", "curl", "getent", "sh")
	needIsolation(t)
	if os.Getuid() != 0 {
		testenv.Skip(t, "needs root to become another user")
	}
	if st, err := os.Stat("/dev/net/tun"); err == nil && st.Mode().Perm()&0o006 != 0 {
		// nobody can open it: the veth fallback is not reached here.
		testenv.Skip(t, "/dev/net/tun is mode %v: the veth fallback is not reached", st.Mode())
	}
	up := newUpstream(t)
	p := up.port()
	echo := lineEchoServer(t)
	script := `
echo "link type: $(cat /sys/class/net/regate0/type)"
echo "getent: $(getent ahostsv4 allowed.test | head -1)"
echo "allowed: $(curl -sS --noproxy '*' http://allowed.test:` + p + `/veth)"
echo "allowed v6: $(curl -sS -6 --noproxy '*' http://allowed.test:` + p + `/veth6)"
curl -sS --noproxy '*' -o /dev/null http://denied.test:` + p + `/ 2>/dev/null; echo "denied: $?"
echo "echo: $(` + probeBin + ` echo allowed.test:` + echo + `)"
`
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	args := append(append([]string{"-u", "nobody", "--", regateBin}, sandboxFlags()...), "--isolate", "--", "sh", "-c", script)
	cmd := exec.CommandContext(ctx, "runuser", args...)
	cmd.Env = cleanEnv("GORACE=atexit_sleep_ms=0", "HOME=/", "XDG_RUNTIME_DIR=")
	cmd.Dir = "/"
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s\n%s", err, stdout.String(), stderr.String())
	}
	for _, want := range []string{
		"link type: 1", // ARPHRD_ETHER: the veth
		"getent: 198.1",
		"allowed: hello from upstream: GET /veth",
		"allowed v6: hello from upstream: GET /veth6",
		"denied: 7",
		"echo: ping",
	} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", want, stdout.String(), stderr.String())
		}
	}
	if strings.Contains(stderr.String(), "no transparent path") {
		t.Errorf("fell back to the proxy path:\n%s", stderr.String())
	}
	if !strings.Contains(stderr.String(), "to denied.test:"+p+" — no rule allows denied.test") {
		t.Errorf("summary lacks the denied flow:\n%s", stderr.String())
	}
}

// TestIsolateProxyMode: --isolate=proxy has no transparent path: lookups
// fail and a program that ignores the proxy variables cannot connect,
// while proxy-aware ones work. A mode that does not exist is refused.
func TestIsolateProxyMode(t *testing.T) {
	need(t, "curl", "getent", "sh")
	needIsolation(t)
	up := newUpstream(t)
	script := `
getent hosts allowed.test >/dev/null; echo "getent: $?"
curl -sS --noproxy '*' -o /dev/null http://allowed.test:` + up.port() + `/ 2>/dev/null; echo "direct: $?"
echo "proxied: $(curl -sS http://allowed.test:` + up.port() + `/proxied)"
`
	res := regate(t, nil, append(sandboxFlags(), "--isolate=proxy", "--", "sh", "-c", script)...)
	wantCode(t, res, 0)
	for _, want := range []string{"getent: 2", "direct: 6", "proxied: hello from upstream: GET /proxied"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q\n%s\n%s", want, res.stdout, res.stderr)
		}
	}
	if strings.Contains(res.stderr, "no transparent path") {
		t.Errorf("--isolate=proxy says it fell back:\n%s", res.stderr)
	}
	res = regate(t, nil, "run", "--isolate=tun", "--", "true")
	if res.code != 125 || !strings.Contains(res.stderr, `--isolate="tun": want transparent or proxy`) {
		t.Errorf("--isolate=tun: %d %s", res.code, res.stderr)
	}
}

// lineEchoServer echoes each connection's bytes as they come; it
// returns the port.
func lineEchoServer(t *testing.T) string {
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
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// newTLSUpstream serves HTTPS on loopback with a certificate for names
// from a CA of its own, whose PEM file it returns.
func newTLSUpstream(t *testing.T, names ...string) (*upstream, string) {
	t.Helper()
	u := &upstream{}
	srv, caFile := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		fmt.Fprintf(w, "hello from TLS upstream: %s %s\n", r.Method, r.URL.Path)
	}), names...)
	u.Server = srv
	return u, caFile
}

// newTLSServer serves h over HTTPS (HTTP/2 enabled) on loopback with a
// certificate for names from a CA of its own, whose PEM file it returns.
func newTLSServer(t *testing.T, h http.Handler, names ...string) (*httptest.Server, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "regate e2e CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		Subject: pkix.Name{CommonName: names[0]}, DNSNames: names, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the cut handshakes are the tests'
	srv.EnableHTTP2 = true
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	caFile := writeFile(t, t.TempDir(), "ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})))
	return srv, caFile
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}
