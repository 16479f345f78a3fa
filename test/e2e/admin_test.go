package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// adminClient speaks to a daemon's admin API: over its unix socket, or over
// TCP with a bearer token.
type adminClient struct {
	base, token string
	c           *http.Client
}

func newAdminClient(t *testing.T, addr, token string) *adminClient {
	t.Helper()
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &adminClient{base: "http://regate", c: &http.Client{Transport: tr}}
	}
	if addr == "" {
		t.Fatal("the daemon serves no admin API")
	}
	return &adminClient{base: "http://" + addr, token: token, c: &http.Client{}}
}

// do sends one request and returns the status and body.
func (a *adminClient) do(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, a.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	resp, err := a.c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// want fails unless method path answers status; it returns the body.
func (a *adminClient) want(t *testing.T, method, path, body string, status int) string {
	t.Helper()
	got, b := a.do(t, method, path, body)
	if got != status {
		t.Fatalf("%s %s: %d %s, want %d", method, path, got, b, status)
	}
	return b
}

func wantCurl(t *testing.T, want string, args ...string) {
	t.Helper()
	if got := curlStatus(t, args...); got != want {
		t.Fatalf("curl %q: %s, want %s", args, got, want)
	}
}

// TestAdminAPI is the acceptance: against a running `regate serve`
// on its default unix socket, a data write lets the next request through, a
// broken policy is refused and changes nothing, an attempt is served with
// its token and refused with another, and /metrics shows regate's metrics.
func TestAdminAPI(t *testing.T) {
	need(t, "curl")
	up := newUpstream(t)
	d := startServe(t, "--allow-cidr", "127.0.0.0/8", "--resolve", "allowed.test:127.0.0.1", "--resolve", "other.test:127.0.0.1")
	path, ok := strings.CutPrefix(d.admin, "unix:")
	if !ok || !strings.HasSuffix(path, "/regate/admin.sock") {
		t.Fatalf("default admin address %q, want unix:$XDG_RUNTIME_DIR/regate/admin.sock", d.admin)
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v (%v), want %v", p, fi.Mode().Perm(), err, mode)
		}
	}
	adm := newAdminClient(t, d.admin, "")
	adm.want(t, "GET", "/health", "", 200)
	allowed := "http://allowed.test:" + up.port() + "/"
	proxy := "http://" + d.http

	wantCurl(t, "403", "-x", proxy, allowed)
	adm.want(t, "PUT", "/v1/data/regate/allow", `["allowed.test"]`, 204)
	wantCurl(t, "200", "-x", proxy, allowed)

	broken := adm.want(t, "PUT", "/v1/policies/x", "package regate.network\n\ndecision := {\n", 400)
	if !strings.Contains(broken, `"code": "invalid_parameter"`) || !strings.Contains(broken, "rego_parse_error") {
		t.Errorf("broken policy answer: %s", broken)
	}
	wantCurl(t, "200", "-x", proxy, allowed)

	var created struct {
		Result struct {
			ID, Token string
			Env       map[string]string
		}
	}
	body := adm.want(t, "POST", "/v1/attempts", `{"id": "job-7", "labels": {"team": "red"}, "allow": ["other.test"]}`, 201)
	if err := json.Unmarshal([]byte(body), &created); err != nil {
		t.Fatal(err)
	}
	other := "http://other.test:" + up.port() + "/"
	wantCurl(t, "403", "-x", proxy, other)
	wantCurl(t, "200", "-x", created.Result.Env["HTTP_PROXY"], other)
	wantCurl(t, "200", "-x", created.Result.Env["REGATE_SOCKS_PROXY"], other)
	wantCurl(t, "407", "-x", proxy, "-U", "job-7:wrong", other)
	wantCurl(t, "200", "-p", "-x", created.Result.Env["HTTPS_PROXY"], other) // a CONNECT tunnel

	deny := adm.want(t, "GET", "/v1/decisions?allow=false&attempt_id=", "", 200)
	if strings.Count(deny, `"decision_id"`) != 2 || strings.Contains(deny, "job-7") {
		t.Errorf("anonymous denies: %s", deny)
	}
	// Plain HTTP, the SOCKS5 tunnel and the GET inside it, the CONNECT
	// tunnel and the GET inside it.
	if mine := adm.want(t, "GET", "/v1/decisions?attempt_id=job-7", "", 200); strings.Count(mine, `"decision_id"`) != 5 {
		t.Errorf("job-7's decisions: %s", mine)
	}

	adm.want(t, "DELETE", "/v1/attempts/job-7", "", 204)
	wantCurl(t, "407", "-x", created.Result.Env["HTTP_PROXY"], other)

	metrics := adm.want(t, "GET", "/metrics", "", 200)
	for _, m := range []string{
		`regate_decisions_total{reason_class="allow",result="allow"}`,
		`regate_decisions_total{reason_class="attempt.allow",result="allow"}`,
		`regate_decision_duration_seconds_bucket`,
		`regate_policy_reloads_total{result="success"} 1`,
		`regate_connections_active{listener="http"}`,
		`regate_tunnel_bytes_total{direction="down"}`,
		`regate_tunnel_bytes_total{direction="up"}`,
		`regate_decision_log_dropped_total 0`,
		`regate_admin_requests_total{code="204",route="PUT /v1/data/{path...}"} 1`,
		`regate_attempts_registered 0`,
		`go_goroutines`,
		`process_resident_memory_bytes`,
	} {
		if !strings.Contains(metrics, m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	if code, logs := d.stop(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d\n%s", code, logs)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind: %v", err)
	}
}

// TestAdminPolicyAndLabels uploads a Rego rule that reads the attempt's
// labels, and watches the decisions on the stream.
func TestAdminPolicyAndLabels(t *testing.T) {
	need(t, "curl")
	up := newUpstream(t)
	dir := t.TempDir()
	writeFile(t, dir, "base.rego", "package regate.network\n\ndefault decision := {\"allow\": false, \"reason\": \"base\"}\n")
	sock := filepath.Join(dir, "a.sock")
	d := startServe(t, "--policy", dir, "--admin", "unix:"+sock, "--allow-cidr", "127.0.0.0/8", "--resolve", "allowed.test:127.0.0.1")
	adm := newAdminClient(t, "unix:"+sock, "")
	req, _ := http.NewRequestWithContext(t.Context(), "GET", adm.base+"/v1/decisions/stream?allow=true", nil)
	resp, err := adm.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stream := bufio.NewReader(resp.Body)

	adm.want(t, "PUT", "/v1/policies/teams", `package regate.network

decision := {"allow": true, "reason": "red team"} if input.attempt.labels.team == "red"
`, 200)
	var red, blue struct{ Result struct{ ID, Token string } }
	_ = json.Unmarshal([]byte(adm.want(t, "POST", "/v1/attempts", `{"labels": {"team": "red"}}`, 201)), &red)
	_ = json.Unmarshal([]byte(adm.want(t, "POST", "/v1/attempts", `{"labels": {"team": "blue"}, "ttl": "1h"}`, 201)), &blue)
	url := "http://allowed.test:" + up.port() + "/"
	wantCurl(t, "403", "-x", "http://"+d.http, "-U", blue.Result.ID+":"+blue.Result.Token, url)
	wantCurl(t, "200", "-x", "http://"+d.http, "-U", red.Result.ID+":"+red.Result.Token, url)

	line, err := stream.ReadString('\n')
	if err != nil || !strings.Contains(line, `"attempt_id":"`+red.Result.ID+`"`) || !strings.Contains(line, `"reason":"red team"`) {
		t.Errorf("stream line %q (%v), want the red team's allow", line, err)
	}
}

func TestAdminTCPWithToken(t *testing.T) {
	need(t, "curl")
	tokenFile := filepath.Join(t.TempDir(), "token")
	d := startServe(t, "--admin", "127.0.0.1:0", "--admin-token-file", tokenFile, "--allow", "*", "--allow-cidr", "127.0.0.0/8")
	b, err := os.ReadFile(tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(tokenFile); fi.Mode().Perm() != 0o600 {
		t.Errorf("generated token file mode %v, want 0600", fi.Mode().Perm())
	}
	token := strings.TrimSpace(string(b))
	newAdminClient(t, d.admin, "").want(t, "GET", "/health", "", 401)
	newAdminClient(t, d.admin, "wrong-token-wrong-token").want(t, "GET", "/v1/status", "", 401)
	adm := newAdminClient(t, d.admin, token)
	status := adm.want(t, "GET", "/v1/status", "", 200)
	if !strings.Contains(status, `"admin":"`+d.admin+`"`) || !strings.Contains(status, `"loaded":true`) {
		t.Errorf("status: %s", status)
	}
	// Everything is allowed and loopback is exempt from the SSRF guard, yet
	// the admin listener is not reachable through the proxy.
	wantCurl(t, "403", "-x", "http://"+d.http, "-H", "Authorization: Bearer "+token, "http://"+d.admin+"/v1/status")
}

func TestAdminSocketInUseOrStale(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "a.sock")
	first := startServe(t, "--admin", "unix:"+sock)
	res := regate(t, nil, "serve", "--http", "127.0.0.1:0", "--socks", "off", "--admin", "unix:"+sock)
	wantCode(t, res, 1)
	if !strings.Contains(res.stderr, "another process is serving") {
		t.Errorf("second serve on a live socket:\n%s", res.stderr)
	}
	_ = first.cmd.Process.Kill() // leaves a stale socket behind
	_ = first.cmd.Wait()
	if fi, err := os.Lstat(sock); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no stale socket after kill: %v", err)
	}
	second := startServe(t, "--admin", "unix:"+sock)
	newAdminClient(t, second.admin, "").want(t, "GET", "/health", "", 200)
}

func TestRunWithAdmin(t *testing.T) {
	need(t, "curl")
	sock := filepath.Join(t.TempDir(), "a.sock")
	script := `curl -s --unix-socket "$1" http://regate/v1/attempts; echo; curl -s -o /dev/null -w '%{http_code}' -X POST --unix-socket "$1" http://regate/v1/attempts -d '{}'`
	res := regate(t, nil, "run", "--admin", "unix:"+sock, "--attempt-id", "solo", "--", "sh", "-c", script, "sh", sock)
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, `"id":"solo"`) || strings.Contains(res.stdout, "token") || !strings.HasSuffix(strings.TrimSpace(res.stdout), "409") {
		t.Errorf("run's admin API:\n%s\nstderr: %s", res.stdout, res.stderr)
	}
	if _, err := os.Lstat(sock); !os.IsNotExist(err) {
		t.Errorf("admin socket left behind by run: %v", err)
	}
}
