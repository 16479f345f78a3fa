package e2e

import (
	"fmt"
	"github.com/regate/regate/internal/testenv"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
)

// debianPython is Debian's interpreter, whose dist-packages hold the
// clients .ci/run installs (python3-httpx, python3-aiohttp,
// python3-requests, python3-urllib3, python3-pip); a python3 earlier on
// PATH (pyenv) does not see them.
const debianPython = "/usr/bin/python3"

// needPython skips (fails under CI) when Debian's python3 cannot import
// every module.
func needPython(t *testing.T, modules ...string) {
	t.Helper()
	need(t, debianPython)
	out, err := exec.Command(debianPython, "-c", "import "+strings.Join(modules, ", ")).CombinedOutput()
	if err != nil {
		testenv.Skip(t, "%s cannot import %v (.ci/run installs them): %s", debianPython, modules, out)
	}
}

// pyClients fetches argv[1] with each client named after it and prints
// "NAME: STATUS BODY" or "NAME: error …"; every client takes its proxy
// from the environment as a program built on it would (urllib3 reads no
// variable: it is given $ALL_PROXY, as a program would pass it one).
const pyClients = `
import asyncio, os, sys
url = sys.argv[1]

def fetch(name):
    if name == "httpx":
        import httpx
        with httpx.Client() as c:
            r = c.get(url)
            return r.status_code, r.text
    if name == "requests":
        import requests
        r = requests.get(url)
        return r.status_code, r.text
    if name == "urllib3":
        import urllib3
        r = urllib3.ProxyManager(os.environ["ALL_PROXY"]).request("GET", url)
        return r.status, r.data.decode()
    if name == "aiohttp":
        import aiohttp
        async def get():
            async with aiohttp.ClientSession(trust_env=True) as s:
                async with s.get(url) as r:
                    return r.status, await r.text()
        return asyncio.run(get())

for name in sys.argv[2:]:
    try:
        status, body = fetch(name)
        print(f"{name}: {status} {body.strip()}")
    except Exception as e:
        print(f"{name}: error {type(e).__name__}: {e}")
`

// simpleIndex is a PEP 503 index with one project, demo 1.0, counting the
// requests that reach it.
func simpleIndex(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/simple/demo/":
			fmt.Fprint(w, `<html><body><a href="demo-1.0.tar.gz">demo-1.0.tar.gz</a></body></html>`)
		default:
			fmt.Fprintf(w, "hello from upstream: %s %s\n", r.Method, r.URL.Path)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// The environment `run` sets works for Python's HTTP clients as Debian
// ships them: httpx 0.23 refuses a socks5h:// ALL_PROXY when a client is
// created (so every request of a program built on it failed), which is why
// ALL_PROXY names the HTTP proxy. Each client is also driven with ALL_PROXY
// as its only proxy variable, and pip lists an index through the proxy.
// SOCKS5 stays offered as REGATE_SOCKS_PROXY.
func TestRunPythonClients(t *testing.T) {
	need(t, "sh", "curl")
	needPython(t, "httpx", "aiohttp", "requests", "urllib3", "pip")
	idx, hits := simpleIndex(t)
	port := idx.URL[strings.LastIndexByte(idx.URL, ':')+1:]
	dir := t.TempDir()
	script := writeFile(t, dir, "clients.py", pyClients)
	url := "http://allowed.test:" + port + "/py"
	sh := `
py=` + debianPython + `
"$py" "$1" "$2" httpx requests urllib3 aiohttp
echo "only ALL_PROXY:"
env -u HTTP_PROXY -u http_proxy -u HTTPS_PROXY -u https_proxy "$py" "$1" "$2" httpx requests
echo "pip: $("$py" -m pip index versions demo --index-url "http://allowed.test:$3/simple/" --trusted-host allowed.test --no-cache-dir --disable-pip-version-check 2>&1 | grep -v WARNING)"
echo "socks: $(curl -s -x "$REGATE_SOCKS_PROXY" "$2")"
`
	res := regate(t, []string{"HOME=" + dir}, append(sandboxFlags(), "--", "sh", "-c", sh, "sh", script, url, port)...)
	wantCode(t, res, 0)
	body := "hello from upstream: GET /py"
	want := []string{
		"httpx: 200 " + body, "requests: 200 " + body, "urllib3: 200 " + body, "aiohttp: 200 " + body,
		"only ALL_PROXY:\nhttpx: 200 " + body + "\nrequests: 200 " + body,
		"pip: demo (1.0)",
		"socks: " + body,
	}
	for _, w := range want {
		if !strings.Contains(res.stdout, w+"\n") {
			t.Errorf("stdout lacks %q:\n%s\nstderr: %s", w, res.stdout, res.stderr)
		}
	}
	if got := hits.Load(); got != 8 {
		t.Errorf("the index saw %d requests, want 8 (4 + 2 clients, pip, SOCKS5)", got)
	}
}
