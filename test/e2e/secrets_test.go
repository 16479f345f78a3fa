package e2e

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// realGitHubToken is shaped like a GitHub token: ghp_ and 36 letters and
// digits.
const realGitHubToken = "ghp_R3alT0kenABCDEFGHIJKLMNOPQRSTUVWwxyz"

// realFileToken is an npm token read from a file.
const realFileToken = "npm_F1leT0kenABCDEFGHIJKLMNOPQRSTUVwxyz"

// newEchoUpstream is a TLS upstream for names that echoes the credentials
// it received, and the Authorization header in a response header.
func newEchoUpstream(t *testing.T, names ...string) (port, caFile string) {
	t.Helper()
	srv, caFile := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		// real: where the real token arrived (regate scrubs the echo
		// itself back to the placeholder on the way to the command).
		var real []string
		_, pass, _ := r.BasicAuth()
		for _, f := range [][2]string{{"auth", auth + pass}, {"path", r.URL.Path}, {"query", r.URL.RawQuery}} {
			if strings.Contains(f[1], realGitHubToken) || strings.Contains(f[1], realFileToken) {
				real = append(real, f[0])
			}
		}
		w.Header().Set("X-Echo", auth)
		fmt.Fprintf(w, "%s auth=%q path=%s query=%s real=%s\n", r.Host[:strings.IndexByte(r.Host, ':')], auth, r.URL.EscapedPath(), r.URL.RawQuery, strings.Join(real, ","))
	}), names...)
	return srv.URL[strings.LastIndexByte(srv.URL, ':')+1:], caFile
}

// TestSecretsRun: the command sees a placeholder shaped like the token;
// Bearer, Basic, a query parameter and a path segment reach the bound
// host with the real token; the placeholder sent to another host is
// denied by the default policy (input.secrets) or, past an uninspected
// tunnel, reaches it as the placeholder only; the bypasses are refused;
// the real token is in no output, decision log or status document.
func TestSecretsRun(t *testing.T) {
	need(t, "curl", "sh", "env")
	p, caFile := newEchoUpstream(t, "api.github.test", "github.test", "other.test", "pass.test")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "decisions.jsonl")
	sock := filepath.Join(dir, "admin.sock")
	// A real token the command should never have had (a file left
	// readable): sent elsewhere it is denied, and logged as the placeholder.
	leaked := writeFile(t, dir, "leaked", realGitHubToken)
	gh, other := "https://api.github.test:"+p, "https://other.test:"+p
	script := `
c() { curl -sS "$@" 2>&1; }
echo "token: $GH_TOKEN $GITHUB_TOKEN"
echo "bearer: $(c -H "Authorization: Bearer $GH_TOKEN" ` + gh + `/user)"
echo "basic: $(c -u "x-access-token:$GH_TOKEN" https://github.test:` + p + `/o/r.git/info/refs)"
echo "query: $(c "` + gh + `/q?a=1&access_token=$GH_TOKEN")"
echo "path: $(c "` + gh + `/t/$GH_TOKEN/x")"
echo "h2: $(c --http2 -H "Authorization: token $GH_TOKEN" ` + gh + `/h2)"
echo "echoed: $(c --http1.1 -D - -o /dev/null -H "Authorization: Bearer $GH_TOKEN" ` + gh + `/e | tr -d '\r' | grep -i '^x-echo')"
echo "other: $(c -H "Authorization: Bearer $GH_TOKEN" ` + other + `/o)"
echo "other encoded: $(c "` + other + `/t/%67${GH_TOKEN#g}")"
echo "leaked: $(c -H "X-Token: $(cat ` + leaked + `)" "` + other + `/l?t=$(cat ` + leaked + `)")"
echo "pass: $(c --cacert ` + caFile + ` -H "Authorization: Bearer $GH_TOKEN" https://pass.test:` + p + `/p)"
echo "second auth: $(c -H "Authorization: Bearer $GH_TOKEN" -H "Authorization: Bearer x$GH_TOKEN" ` + gh + `/2)"
echo "other header: $(c -H "X-Token: $GH_TOKEN" ` + gh + `/x)"
echo "lower: $(c -H "Authorization: Bearer $(echo $GH_TOKEN | tr A-Z a-z)" ` + gh + `/l)"
echo "host: $(c -H "Host: $GH_TOKEN" ` + gh + `/h)"
echo "cleartext: $(c -H "Authorization: Bearer $GH_TOKEN" http://api.github.test:` + p + `/c)"
echo "status: $(curl -sS --noproxy '*' --unix-socket ` + sock + ` http://regate/v1/status)"
echo "decisions: $(curl -sS --noproxy '*' --unix-socket ` + sock + ` http://regate/v1/decisions)"
echo "env:"; env
`
	res := regate(t, []string{"GH_TOKEN=" + realGitHubToken}, "run", "--decision-timeout", "30s", "--secret", "github=GH_TOKEN@api.github.test,github.test",
		"--allow", "api.github.test", "--allow", "github.test", "--allow", "other.test", "--allow", "pass.test", "--inspect", "other.test",
		"--allow-cidr", "127.0.0.0/8", "--resolve", "api.github.test:127.0.0.1", "--resolve", "github.test:127.0.0.1",
		"--resolve", "other.test:127.0.0.1", "--resolve", "pass.test:127.0.0.1", "--upstream-ca", caFile,
		"--decision-log", logPath, "--admin", "unix:"+sock, "--", "sh", "-c", script)
	wantCode(t, res, 0)
	m := regexp.MustCompile(`token: (\S+) (\S+)`).FindStringSubmatch(res.stdout)
	if m == nil || m[1] == realGitHubToken || len(m[1]) != len(realGitHubToken) || !strings.HasPrefix(m[1], "ghp_") || m[2] != m[1] {
		t.Fatalf("the command's GH_TOKEN and GITHUB_TOKEN are not one placeholder shaped like the token: %q\n%s", m, res.stdout)
	}
	ph := m[1]
	for _, want := range []string{
		`bearer: api.github.test auth="Bearer ` + ph + `" path=/user query= real=auth`,
		`basic: github.test auth="Basic `,
		`query: api.github.test auth="" path=/q query=a=1&access_token=` + ph + ` real=query`,
		`path: api.github.test auth="" path=/t/` + ph + `/x query= real=path`,
		`h2: api.github.test auth="token ` + ph + `" path=/h2 query= real=auth`,
		"echoed: X-Echo: Bearer " + ph,
		"other: regate: connection to other.test:" + p + " blocked: the request carries the placeholder of secret github, which is not for other.test",
		"other encoded: regate: connection to other.test:" + p + " blocked: the request carries the placeholder of secret github",
		`pass: pass.test auth="Bearer ` + ph + `" path=/p query= real=` + "\n",
		"leaked: regate: connection to other.test:" + p + " blocked: the request carries the placeholder of secret github, which is not for other.test",
		"second auth: regate: connection to api.github.test:" + p + " blocked: a secret's placeholder is left where regate does not replace it: secret github",
		"other header: regate: connection to api.github.test:" + p + " blocked: a secret's placeholder is left where regate does not replace it: secret github",
		"lower: regate: connection to api.github.test:" + p + " blocked: a secret's placeholder is left where regate does not replace it: secret github",
		"host: regate: host",
		"cleartext: regate: connection to api.github.test:" + p + " blocked: the request carries the placeholder of secret github over plain HTTP",
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", want, res.stdout, res.stderr)
		}
	}
	if !regexp.MustCompile(`basic: github.test auth="Basic \S+" path=/o/r.git/info/refs query= real=auth`).MatchString(res.stdout) {
		t.Errorf("Basic did not carry the real token:\n%s", res.stdout)
	}
	if n := strings.Count(res.stderr, "can still read the real value"); n != 1 {
		t.Errorf("the warning is printed %d times, want once:\n%s", n, res.stderr)
	}
	if !strings.Contains(res.stderr, "regate: secret github sent in 5 requests to api.github.test") ||
		!strings.Contains(res.stderr, "regate: secret github sent in 1 request to github.test") {
		t.Errorf("the summary lacks the uses:\n%s", res.stderr)
	}
	data, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	// The real token is nowhere the command or an operator looks: not in
	// the echoes (scrubbed, Basic's base64 too), stderr, a decision, the
	// status, the command's environment.
	for name, text := range map[string]string{"stderr": res.stderr, "decision log": string(data), "output": res.stdout} {
		if strings.Contains(text, realGitHubToken) || strings.Contains(text, b64("x-access-token:"+realGitHubToken)) {
			t.Errorf("the real token is in the %s:\n%s", name, text)
		}
	}
	denied := 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var ev struct {
			Input struct {
				Host    string   `json:"host"`
				Secrets []string `json:"secrets"`
			} `json:"input"`
			Result struct {
				Allow bool   `json:"allow"`
				Rule  string `json:"rule"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Input.Host == "other.test" && len(ev.Input.Secrets) > 0 {
			if ev.Input.Secrets[0] != "github" || ev.Result.Allow || ev.Result.Rule != "secrets" {
				t.Errorf("decision: %s", line)
			}
			denied++
		}
	}
	if denied != 3 {
		t.Errorf("%d denied decisions of other.test with secrets, want 3:\n%s", denied, data)
	}
}

// TestSecretsIsolated: under --isolate the command finds no real value in
// its environment or in /proc/1/environ, the secret's file is hidden, no
// warning is printed, and the swap works, through the proxy variables and
// on the transparent path of a client that ignores them.
func TestSecretsIsolated(t *testing.T) {
	need(t, "curl", "sh", "env", "cat")
	needIsolation(t)
	p, caFile := newEchoUpstream(t, "api.github.test")
	dir := t.TempDir()
	const fileToken = realFileToken
	tokenFile := filepath.Join(dir, "npm-token")
	if err := os.WriteFile(tokenFile, []byte(fileToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "regate.yaml", `
secrets:
  - name: npm
    file: `+tokenFile+`
    hosts: [api.github.test]
`)
	script := `
echo "token: $GH_TOKEN"
echo "npm: $NPM_TOKEN"
echo "file: $(cat ` + tokenFile + ` 2>&1)"
echo "bearer: $(curl -sS -H "Authorization: Bearer $GH_TOKEN" https://api.github.test:` + p + `/user 2>&1)"
echo "transparent: $(env -u HTTPS_PROXY -u https_proxy -u ALL_PROXY -u all_proxy curl -sS -H "Authorization: Bearer $GH_TOKEN" https://api.github.test:` + p + `/tr 2>&1)"
echo "npm bearer: $(curl -sS -H "Authorization: Bearer $NPM_TOKEN" https://api.github.test:` + p + `/npm 2>&1)"
echo "environ:"; cat /proc/1/environ /proc/self/environ | tr '\0' '\n'
echo "env:"; env
`
	res := regate(t, []string{"GH_TOKEN=" + realGitHubToken}, "run", "--decision-timeout", "30s", "--isolate", "--config", cfg,
		"--secret", "github=GH_TOKEN@api.github.test", "--allow", "api.github.test",
		"--allow-cidr", "127.0.0.0/8", "--resolve", "api.github.test:127.0.0.1", "--upstream-ca", caFile, "--", "sh", "-c", script)
	wantCode(t, res, 0)
	m := regexp.MustCompile(`token: (ghp_\S+)`).FindStringSubmatch(res.stdout)
	if m == nil || m[1] == realGitHubToken || len(m[1]) != len(realGitHubToken) {
		t.Fatalf("placeholder: %q\n%s", m, res.stdout)
	}
	npm := regexp.MustCompile(`npm: (npm_\S+)`).FindStringSubmatch(res.stdout)
	if npm == nil || npm[1] == fileToken || len(npm[1]) != len(fileToken) {
		t.Fatalf("npm placeholder: %q\n%s", npm, res.stdout)
	}
	for _, want := range []string{
		`bearer: api.github.test auth="Bearer ` + m[1] + `" path=/user query= real=auth`,
		`npm bearer: api.github.test auth="Bearer ` + npm[1] + `" path=/npm query= real=auth`,
		`transparent: api.github.test auth="Bearer ` + m[1] + `" path=/tr query= real=auth`,
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", want, res.stdout, res.stderr)
		}
	}
	rest := res.stdout[strings.Index(res.stdout, "environ:"):]
	file := res.stdout[strings.Index(res.stdout, "file: "):strings.Index(res.stdout, "bearer: ")]
	for name, text := range map[string]string{"environment": rest, "file": file, "stderr": res.stderr} {
		if strings.Contains(text, realGitHubToken) || strings.Contains(text, fileToken) {
			t.Errorf("a real token is in the command's %s:\n%s", name, text)
		}
	}
	if strings.Contains(res.stderr, "can still read the real value") {
		t.Errorf("the warning is printed under --isolate:\n%s", res.stderr)
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// TestSecretsReadmeExample: the README's rule on input.secrets passes its
// own tests (regate test, as opa test).
func TestSecretsReadmeExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"policy.rego", "policy_test.rego"} {
		m := regexp.MustCompile("(?s)```rego\n# secrets/" + regexp.QuoteMeta(name) + "\n(.*?)```").FindSubmatch(readme)
		if m == nil {
			t.Fatalf("README has no secrets/%s block", name)
		}
		writeFile(t, dir, name, string(m[1]))
	}
	res := regate(t, nil, "test", "--fail-on-empty", dir)
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, "PASS: 4/4") {
		t.Errorf("regate test:\n%s\n%s", res.stdout, res.stderr)
	}
}

// TestSecretsUnsetRefused: serve and run refuse a secret whose source is
// unset, naming it, rather than start without it.
func TestSecretsUnsetRefused(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "regate.yaml", "secrets:\n  - name: github\n")
	res := regate(t, []string{"GH_TOKEN=", "GITHUB_TOKEN="}, "serve", "--config", cfg, "--http", "127.0.0.1:0", "--socks", "off", "--admin", "off")
	wantCode(t, res, 1)
	if !strings.Contains(res.stderr, "secret github: none of GH_TOKEN, GITHUB_TOKEN is set") {
		t.Errorf("stderr: %s", res.stderr)
	}
	res = regate(t, []string{"GH_TOKEN=", "GITHUB_TOKEN="}, "run", "--secret", "github", "--", "true")
	wantCode(t, res, 125)
	if !strings.Contains(res.stderr, "secret github: none of GH_TOKEN, GITHUB_TOKEN is set") {
		t.Errorf("stderr: %s", res.stderr)
	}
}

// TestSecretsGitClone: git clone https://x-access-token:$GH_TOKEN@…, the
// way CI scripts pass a token, works through the swap: the server takes
// only the real token (HTTP Basic), the command only ever held the
// placeholder.
func TestSecretsGitClone(t *testing.T) {
	need(t, "git", "sh")
	home := t.TempDir()
	root := t.TempDir()
	work := filepath.Join(root, "work")
	git(t, home, root, "init", "-q", "-b", "main", work)
	writeFile(t, work, "README", "private repository\n")
	git(t, home, work, "add", "README")
	git(t, home, work, "commit", "-q", "-m", "first")
	git(t, home, root, "clone", "-q", "--bare", work, filepath.Join(root, "acme", "repo.git"))
	execPath, err := exec.Command("git", "--exec-path").Output()
	if err != nil {
		t.Fatal(err)
	}
	backend := &cgi.Handler{
		Path: filepath.Join(strings.TrimSpace(string(execPath)), "git-http-backend"),
		Env:  []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"},
	}
	var refused atomic.Int64
	srv, caFile := newTLSServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user, pass, ok := r.BasicAuth(); !ok || user != "x-access-token" || pass != realGitHubToken {
			refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
			http.Error(w, "authentication required", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}), "github.test")
	port := srv.URL[strings.LastIndexByte(srv.URL, ':')+1:]
	clone := filepath.Join(t.TempDir(), "clone")
	script := `git clone -q "https://x-access-token:$GH_TOKEN@github.test:` + port + `/acme/repo.git" ` + clone + ` 2>&1 && echo "clone: $(cat ` + clone + `/README)"
echo "remote: $(git -C ` + clone + ` remote get-url origin)"`
	res := regate(t, append(gitEnv(home), "GH_TOKEN="+realGitHubToken), "run", "--decision-timeout", "30s", "--secret", "github=GH_TOKEN@github.test",
		"--allow", "github.test", "--allow-cidr", "127.0.0.0/8", "--resolve", "github.test:127.0.0.1", "--upstream-ca", caFile,
		"--", "sh", "-c", script)
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, "clone: private repository") {
		t.Fatalf("clone failed (%d refused)\nstdout:\n%s\nstderr:\n%s", refused.Load(), res.stdout, res.stderr)
	}
	// git keeps the URL it was given: the placeholder, never the token.
	config, err := os.ReadFile(filepath.Join(clone, ".git", "config"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(config), realGitHubToken) || strings.Contains(res.stdout, realGitHubToken) || strings.Contains(res.stderr, realGitHubToken) {
		t.Errorf("the real token reached the command's files or output:\n%s\n%s", config, res.stdout)
	}
	if !regexp.MustCompile(`x-access-token:ghp_[A-Za-z0-9]{36}@`).Match(config) {
		t.Errorf("the clone's remote holds no placeholder:\n%s", config)
	}
}

// TestSecretsServe: serve holds the real token; an attempt registered with
// "secrets": ["github"] gets a placeholder of its own and the variables
// that make its child trust serve's inspection CA, and its requests to the
// bound host carry the real token; another attempt sending the same
// placeholder gets no swap (its tunnel is not even inspected); an unknown
// secret refuses the attempt and registers nothing; a deleted attempt's
// placeholder is worthless. The real token is in no log, decision, status
// or metric.
func TestSecretsServe(t *testing.T) {
	need(t, "curl")
	p, caFile := newEchoUpstream(t, "api.github.test")
	logPath := filepath.Join(t.TempDir(), "decisions.jsonl")
	d := startServeWith(t, func(c *exec.Cmd) { c.Env = append(c.Env, "GH_TOKEN="+realGitHubToken) },
		"--secret", "github=GH_TOKEN@api.github.test", "--allow", "api.github.test", "--allow-cidr", "127.0.0.0/8",
		"--resolve", "api.github.test:127.0.0.1", "--upstream-ca", caFile, "--decision-log", logPath, "--decision-timeout", "30s")
	adm := newAdminClient(t, d.admin, "")
	holder := createAttempt(t, adm, `{"id": "agent-1", "secrets": ["github"]}`)
	plain := createAttempt(t, adm, `{"id": "agent-2"}`)
	ph := holder.Result.Env["GH_TOKEN"]
	if ph == "" || ph == realGitHubToken || len(ph) != len(realGitHubToken) || !strings.HasPrefix(ph, "ghp_") || holder.Result.Env["GITHUB_TOKEN"] != ph {
		t.Fatalf("the attempt's env does not hold one placeholder shaped like the token: %v", holder.Result.Env)
	}
	if _, ok := plain.Result.Env["GH_TOKEN"]; ok {
		t.Errorf("an attempt that asked for no secret got one: %v", plain.Result.Env)
	}
	bundle := holder.Result.Env["SSL_CERT_FILE"]
	if bundle == "" || plain.Result.Env["SSL_CERT_FILE"] != bundle {
		t.Fatalf("attempts are not told to trust serve's inspection CA: %v", holder.Result.Env)
	}
	if java := holder.Result.Env["JAVA_TOOL_OPTIONS"]; !strings.Contains(java, "-Dhttps.proxyHost=") || !strings.Contains(java, "-Djavax.net.ssl.trustStore=") {
		t.Errorf("JAVA_TOOL_OPTIONS lacks the proxy or the trust store: %q", java)
	}
	curl := func(env map[string]string, extra ...string) string {
		t.Helper()
		args := append([]string{"-sS", "-x", env["HTTPS_PROXY"], "-H", "Authorization: Bearer " + ph}, extra...)
		cmd := exec.Command("curl", append(args, "https://api.github.test:"+p+"/user")...)
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+env["SSL_CERT_FILE"], "CURL_CA_BUNDLE="+env["SSL_CERT_FILE"])
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("curl: %v\n%s", err, out)
		}
		return string(out)
	}
	if got := curl(holder.Result.Env); !strings.Contains(got, `auth="Bearer `+ph+`" path=/user query= real=auth`) {
		t.Errorf("the holder's request did not carry the real token: %q", got)
	}
	// agent-2's tunnel is passthrough (it holds no secret): it trusts the
	// upstream itself, which receives the placeholder only.
	if got := curl(plain.Result.Env, "--cacert", caFile); !strings.Contains(got, `auth="Bearer `+ph+`" path=/user query= real=`+"\n") {
		t.Errorf("another attempt's request with the holder's placeholder: %q", got)
	}
	if got := adm.want(t, "GET", "/v1/attempts/agent-1", "", http.StatusOK); !strings.Contains(got, `"secrets":["github"]`) {
		t.Errorf("the attempt does not show its secrets: %s", got)
	}
	if code, body := adm.do(t, "POST", "/v1/attempts", `{"id": "agent-3", "secrets": ["gitlab"]}`); code != http.StatusBadRequest || !strings.Contains(body, `\"gitlab\" is not loaded (loaded: github)`) {
		t.Errorf("unknown secret: %d %s", code, body)
	}
	adm.want(t, "GET", "/v1/attempts/agent-3", "", http.StatusNotFound)
	adm.want(t, "DELETE", "/v1/attempts/agent-1", "", http.StatusNoContent)
	if got := connectStatus(t, "-x", holder.Result.Env["HTTPS_PROXY"], "https://api.github.test:"+p+"/user"); got != "407" {
		t.Errorf("a deleted attempt still tunnels: %q", got)
	}
	status := adm.want(t, "GET", "/v1/status", "", http.StatusOK)
	metrics := adm.want(t, "GET", "/metrics", "", http.StatusOK)
	if !strings.Contains(metrics, `regate_secret_swaps_total{secret="github"} 1`) {
		t.Errorf("metrics lack the swap:\n%s", metrics)
	}
	code, logs := d.stop(t, syscall.SIGTERM)
	if code != 0 {
		t.Errorf("serve exited %d\n%s", code, logs)
	}
	decisions, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"serve's log": logs, "decision log": string(decisions), "status": status, "metrics": metrics} {
		if strings.Contains(text, realGitHubToken) {
			t.Errorf("the real token is in %s:\n%s", name, text)
		}
	}
}
