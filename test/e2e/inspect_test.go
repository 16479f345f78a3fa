package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestInspectRun: with --inspect, the HTTPS requests to an inspected host
// are decided one by one (--methods holds for HTTPS), the command trusts
// the run's CA through the variables regate set, HTTP/2 is negotiated,
// uninspected hosts pass through untouched, an upstream certificate that
// does not verify is a 502 naming it, the CA key is in no file, and the
// bundle is removed at exit.
func TestInspectRun(t *testing.T) {
	need(t, "curl", "python3", "sh")
	up, caFile := newTLSUpstream(t, "github.test", "other.test")
	p := up.port()
	tmp := t.TempDir()
	dir := t.TempDir()
	writeFile(t, dir, "get.py", `
import sys, urllib.request
print("python:", urllib.request.urlopen(sys.argv[1]).read().decode().strip())
`)
	writeFile(t, dir, "clients.py", `
import sys, requests, httpx
print("requests:", requests.get(sys.argv[1] + "/requests").text.strip())
print("httpx:", httpx.get(sys.argv[1] + "/httpx").text.strip())
r = requests.post(sys.argv[1] + "/requests-post", data=b"x")
print("requests post:", r.status_code, r.headers.get("X-Proxy-Error"))
`)
	script := `
code() { curl -sS -o /dev/null -w '%{http_code}' "$@" 2>/dev/null; echo " $?"; }
echo "get: $(curl -sS https://github.test:` + p + `/x)"
echo "post: $(curl -sS -i --http1.1 -X POST -d data https://github.test:` + p + `/x | tr -d '\r' | grep -E '^HTTP/1|^X-Proxy-Error|^regate:' | tr '\n' '|')"
echo "post h2: $(curl -sS -i -X POST -d data https://github.test:` + p + `/x | tr -d '\r' | grep -iE '^HTTP/2|^x-proxy-error|^regate:' | tr '\n' '|')"
echo "socks: $(curl -sS -x "${REGATE_SOCKS_PROXY:-$ALL_PROXY}" https://github.test:` + p + `/socks)"
echo "h2: $(curl -sS --http2 -o /dev/null -w '%{http_version}' https://github.test:` + p + `/h2)"
echo "regate CA only: $(code --cacert ` + caFile + ` https://github.test:` + p + `/)"
echo "passthrough: $(curl -sS --cacert ` + caFile + ` https://other.test:` + p + `/pass)"
echo "wrong name: $(curl -sS https://wrong.test:` + p + `/ | tr -d '\n')"
python3 ` + dir + `/get.py https://github.test:` + p + `/py
/usr/bin/python3 ` + dir + `/clients.py https://github.test:` + p + `
echo "key on disk: $(grep -rl 'PRIVATE KEY' "$TMPDIR" 2>/dev/null | wc -l)"
echo "bundle: $(ls $TMPDIR/regate-run-*/bundle.pem | wc -l)"
`
	logPath := filepath.Join(dir, "decisions.jsonl")
	res := regate(t, []string{"TMPDIR=" + tmp}, "run", "--inspect", "github.test", "--inspect", "wrong.test",
		"--allow", "github.test", "--allow", "other.test", "--allow", "wrong.test", "--methods", "GET,HEAD",
		"--allow-cidr", "127.0.0.0/8", "--resolve", "github.test:127.0.0.1", "--resolve", "other.test:127.0.0.1",
		"--resolve", "wrong.test:127.0.0.1", "--upstream-ca", caFile, "--decision-log", logPath, "--", "sh", "-c", script)
	wantCode(t, res, 0)
	for _, want := range []string{
		"get: hello from TLS upstream: GET /x",
		"|HTTP/1.1 403 method POST is not allowed for HTTPS requests|X-Proxy-Error: blocked-by-policy|regate: connection to github.test:" + p + " blocked: method POST is not allowed for HTTPS requests",
		"post h2: HTTP/2 403 |x-proxy-error: blocked-by-policy|regate: connection to github.test:" + p + " blocked: method POST is not allowed for HTTPS requests",
		"socks: hello from TLS upstream: GET /socks",
		"h2: 2",
		"regate CA only: 000 60", // curl: the inspected host shows regate's certificate
		"passthrough: hello from TLS upstream: GET /pass",
		"wrong name: regate: upstream failed: tls: failed to verify certificate: x509: certificate is valid for github.test, other.test, not wrong.test",
		"python: hello from TLS upstream: GET /py",
		"requests: hello from TLS upstream: GET /requests",
		"httpx: hello from TLS upstream: GET /httpx",
		"requests post: 403 blocked-by-policy",
		"key on disk: 0",
		"bundle: 1",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", want, res.stdout, res.stderr)
		}
	}
	if !strings.Contains(res.stderr, "regate: blocked 3 inspected HTTPS requests to github.test:"+p+" — method POST is not allowed for HTTPS requests") ||
		!strings.Contains(res.stderr, "1 connection to github.test:"+p+" failed — the client's TLS handshake failed on an inspected host") {
		t.Errorf("summary lacks the inspected deny:\n%s", res.stderr)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "regate-run-*")); len(left) != 0 {
		t.Errorf("the run's CA directory was left behind: %v", left)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	inspected := 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var ev struct {
			Input struct {
				Method string `json:"method"`
				Path   string `json:"path"`
				TLS    *struct {
					Inspected bool `json:"inspected"`
				} `json:"tls"`
				Headers map[string]string `json:"headers"`
			} `json:"input"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Input.TLS != nil && ev.Input.TLS.Inspected {
			inspected++
			if ev.Input.Path == "" || ev.Input.Headers["user-agent"] == "" {
				t.Errorf("inspected request event without path or headers: %s", line)
			}
		}
	}
	if inspected < 6 {
		t.Errorf("%d inspected request events, want one per request (6 or more):\n%s", inspected, data)
	}
}

// TestInspectIsolated: under --isolate, the run's bundle is bound over the
// system's, so a client that ignores every variable trusts the CA too, and
// Node (https.get and fetch, through the transparent path) trusts it
// through NODE_EXTRA_CA_CERTS.
func TestInspectIsolated(t *testing.T) {
	need(t, "curl", "node", "sh", "env")
	needIsolation(t)
	up, caFile := newTLSUpstream(t, "github.test")
	p := up.port()
	dir := t.TempDir()
	writeFile(t, dir, "get.js", `
const https = require("https");
https.get("https://github.test:`+p+`/node-https", (r) => {
  let b = ""; r.on("data", (d) => b += d); r.on("end", async () => {
    console.log("node https: " + b.trim());
    try {
      const f = await fetch("https://github.test:`+p+`/node-fetch");
      console.log("node fetch: " + (await f.text()).trim());
    } catch (e) { console.log("node fetch: " + e.cause); }
  });
}).on("error", (e) => console.log("node https: " + e.message));
`)
	script := `
echo "no variables: $(env -u SSL_CERT_FILE -u CURL_CA_BUNDLE -u REQUESTS_CA_BUNDLE curl -sS https://github.test:` + p + `/novars)"
node ` + dir + `/get.js
`
	res := regate(t, nil, "run", "--isolate", "--inspect", "github.test", "--allow", "github.test",
		"--allow-cidr", "127.0.0.0/8", "--resolve", "github.test:127.0.0.1", "--upstream-ca", caFile, "--", "sh", "-c", script)
	wantCode(t, res, 0)
	for _, want := range []string{
		"no variables: hello from TLS upstream: GET /novars",
		"node https: hello from TLS upstream: GET /node-https",
		"node fetch: hello from TLS upstream: GET /node-fetch",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", want, res.stdout, res.stderr)
		}
	}
}

// TestInspectPathRules: --allow-path github.test/acme/** lets git clone
// the acme repository over HTTPS and refuses a push to another owner's,
// git printing regate's reason.
func TestInspectPathRules(t *testing.T) {
	need(t, "git", "sh")
	home := t.TempDir()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	git(t, home, root, "init", "-q", "-b", "main", work)
	writeFile(t, work, "README", "acme's repository\n")
	git(t, home, work, "add", "README")
	git(t, home, work, "commit", "-q", "-m", "first")
	for _, owner := range []string{"acme", "other"} {
		bare := filepath.Join(root, owner, "repo.git")
		git(t, home, root, "clone", "-q", "--bare", work, bare)
		git(t, home, bare, "config", "http.receivepack", "true")
	}
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	srv, caFile := newTLSServer(t, &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}, "github.test")
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	clone := filepath.Join(t.TempDir(), "clone")
	base := "https://github.test:" + port
	script := `
git clone -q ` + base + `/acme/repo.git ` + clone + ` && echo "clone: $(cat ` + clone + `/README)"
cd ` + clone + ` && git push -q ` + base + `/other/repo.git main:refs/heads/x 2>&1; echo "push: $?"
`
	res := regate(t, gitEnv(home), "run", "--allow-path", "github.test/acme/**", "--allow-cidr", "127.0.0.0/8",
		"--resolve", "github.test:127.0.0.1", "--upstream-ca", caFile, "--", "sh", "-c", script)
	wantCode(t, res, 0)
	for _, want := range []string{
		"clone: acme's repository",
		"remote: regate: connection to github.test:" + port + " blocked: path /other/repo.git/info/refs is not allowed on github.test",
		"push: 128",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", want, res.stdout, res.stderr)
		}
	}
}

// TestInspectServe: serve generates a CA when given none and writes its
// certificate beside its admin socket (a client trusting that file
// reaches an inspected host, and --methods holds); given --inspect-ca and
// --inspect-key, it issues from that CA, and a key file others can read
// is refused.
func TestInspectServe(t *testing.T) {
	need(t, "curl")
	up, caFile := newTLSUpstream(t, "allowed.test")
	p := up.port()
	flags := []string{"--inspect", "allowed.test", "--allow", "allowed.test", "--methods", "GET", "--allow-cidr", "127.0.0.0/8",
		"--resolve", "allowed.test:127.0.0.1", "--upstream-ca", caFile}
	xdg := t.TempDir()
	d := startServeWith(t, func(c *exec.Cmd) { c.Env = append(c.Env, "XDG_RUNTIME_DIR="+xdg) }, flags...)
	generated := filepath.Join(xdg, "regate", "inspect-ca.pem")
	url := "https://allowed.test:" + p + "/x"
	if got := curlStatus(t, "-x", "http://"+d.http, "--cacert", generated, url); got != "200" {
		t.Errorf("GET trusting the generated CA: %s, want 200", got)
	}
	if got := curlStatus(t, "-x", "http://"+d.http, "--cacert", generated, "-X", "POST", url); got != "403" {
		t.Errorf("POST: %s, want 403", got)
	}
	b, err := os.ReadFile(generated)
	if err != nil || strings.Contains(string(b), "PRIVATE KEY") {
		t.Errorf("the generated CA file: %v, holds a key: %v", err, strings.Contains(string(b), "PRIVATE KEY"))
	}

	dir := t.TempDir()
	certPEM, keyPEM := makeCA(t)
	cert := writeFile(t, dir, "ca.pem", certPEM)
	key := writeFile(t, dir, "ca.key", keyPEM)
	if err := os.Chmod(key, 0o600); err != nil {
		t.Fatal(err)
	}
	d2 := startServe(t, append(flags, "--inspect-ca", cert, "--inspect-key", key)...)
	if got := curlStatus(t, "-x", "http://"+d2.http, "--cacert", cert, url); got != "200" {
		t.Errorf("GET trusting the given CA: %s, want 200", got)
	}
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	res := regate(t, nil, append([]string{"serve", "--http", "127.0.0.1:0", "--socks", "off", "--admin", "off", "--inspect-ca", cert, "--inspect-key", key}, flags...)...)
	if res.code == 0 || !strings.Contains(res.stderr, "inspection CA key") || !strings.Contains(res.stderr, "group or others") {
		t.Errorf("a key readable by others: exit %d\n%s", res.code, res.stderr)
	}
}

// makeCA returns a new CA's certificate and EC key, PEM-encoded.
func makeCA(t *testing.T) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "fleet inspection CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// TestInspectJVM: the JVM under run reaches an inspected host through the
// proxy properties and the PKCS#12 trust store regate puts in
// JAVA_TOOL_OPTIONS (the system's roots plus the run's CA).
func TestInspectJVM(t *testing.T) {
	need(t, "java", "sh")
	up, caFile := newTLSUpstream(t, "github.test")
	p := up.port()
	src := writeFile(t, t.TempDir(), "Get.java", javaGet)
	url := "https://github.test:" + p + "/jvm"
	res := regate(t, nil, "run", "--inspect", "github.test", "--allow", "github.test", "--methods", "GET",
		"--allow-cidr", "127.0.0.1/32", "--resolve", "github.test:127.0.0.1", "--upstream-ca", caFile, "--", "java", src, url)
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, url+" 200 hello from TLS upstream: GET /jvm") {
		t.Errorf("the JVM through an inspected host:\nstdout:\n%s\nstderr:\n%s", res.stdout, res.stderr)
	}
}
