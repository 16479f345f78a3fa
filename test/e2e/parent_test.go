package e2e

import (
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// squidParent is a Squid started as regate's parent proxy: basic
// authentication (basic_ncsa_auth), its own ACL (squid-denied.test is
// refused), names resolved from its own hosts file, every request in
// access.log.
type squidParent struct {
	addr, dir string
}

const squidParentConf = `http_port 127.0.0.1:{{port}}
visible_hostname regate-e2e
{{user}}
auth_param basic program {{helper}} {{dir}}/passwd
auth_param basic realm squid-e2e
acl authed proxy_auth REQUIRED
acl refused dstdomain squid-denied.test
http_access deny refused
http_access allow authed
http_access deny all
hosts_file {{dir}}/hosts
cache deny all
cache_mem 0 MB
access_log stdio:{{dir}}/access.log
cache_log {{dir}}/cache.log
cache_store_log none
pid_filename {{dir}}/squid.pid
coredump_dir {{dir}}
netdb_filename none
pinger_enable off
logfile_rotate 0
shutdown_lifetime 0 seconds
`

// squidPassword is the parent's password: it must appear in no output.
const squidPassword = "pa55-w0rd-never-shown"

// startSquidParent starts Squid with the user alice (squidPassword) and
// the names of hosts resolving to 127.0.0.1.
func startSquidParent(t *testing.T, hosts ...string) *squidParent {
	t.Helper()
	need(t, "squid", "openssl")
	squidBin, _ := exec.LookPath("squid")
	helper := "/usr/lib/squid/basic_ncsa_auth"
	if _, err := os.Stat(helper); err != nil {
		t.Fatalf("squid's basic_ncsa_auth: %v", err)
	}
	dir, err := os.MkdirTemp("", "regate-squid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	hash, err := exec.Command("openssl", "passwd", "-apr1", squidPassword).Output()
	if err != nil {
		t.Fatal(err)
	}
	port := freeTCPPort(t)
	userLine := ""
	if os.Geteuid() == 0 {
		userLine = "cache_effective_user proxy" // squid drops to it
	}
	conf := strings.NewReplacer("{{port}}", port, "{{user}}", userLine, "{{helper}}", helper, "{{dir}}", dir).Replace(squidParentConf)
	files := map[string]string{
		"squid.conf": conf,
		"passwd":     "alice:" + strings.TrimSpace(string(hash)) + "\n",
		"hosts":      "127.0.0.1 " + strings.Join(hosts, " ") + "\n",
		"access.log": "",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 { // the directory and its files are squid's user's
		u, err := user.Lookup("proxy")
		if err != nil {
			t.Fatalf("squid's user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, name := range append([]string{""}, slices.Collect(maps.Keys(files))...) {
			if err := os.Chown(filepath.Join(dir, name), uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command(squidBin, "-N", "-f", filepath.Join(dir, "squid.conf"))
	cmd.Dir = dir
	out, err := os.Create(filepath.Join(dir, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); out.Close() })
	addr := "127.0.0.1:" + port
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "cache.log"))
			t.Fatalf("squid did not start: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &squidParent{addr: addr, dir: dir}
}

// url is the parent's URL with alice's password (or another).
func (s *squidParent) url(password string) string {
	return "http://alice:" + password + "@" + s.addr
}

// log is Squid's access log so far (it writes each line as a request
// ends).
func (s *squidParent) log(t *testing.T) string {
	t.Helper()
	time.Sleep(200 * time.Millisecond)
	b, err := os.ReadFile(filepath.Join(s.dir, "access.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func freeTCPPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// TestUpstreamProxy: behind a parent proxy (Squid with its own ACL and
// basic authentication), regate decides first and then sends everything
// it allows through the parent, by name: plain HTTP, CONNECT, SOCKS5 and
// git over HTTPS. Its denies never reach the parent; the parent's refusals
// are 502s that name them (never a 407 to the child); the password is in
// no output.
func TestUpstreamProxy(t *testing.T) {
	need(t, "curl", "git", "sh")
	sq := startSquidParent(t, "allowed.test", "squid-denied.test", "git.test")
	up := newUpstream(t)
	p := up.port()
	home := t.TempDir()
	gitSrv := gitServerTLS(t, home, true)
	gitPort := gitSrv.URL[strings.LastIndexByte(gitSrv.URL, ':')+1:]
	clone := filepath.Join(t.TempDir(), "clone")
	flags := []string{"run", "--allow", "allowed.test", "--allow", "squid-denied.test", "--allow", "git.test",
		"--allow", "internal.test", "--allow", "10.1.2.3", "--resolve", "internal.test:10.1.2.3",
		"--allow-cidr", "127.0.0.0/8", "--upstream-proxy", sq.url(squidPassword)}
	script := `
code() { curl -sS -o /dev/null -w '%{http_code} %{http_connect}' "$@" 2>/dev/null; echo " $?"; }
socks=${REGATE_SOCKS_PROXY:-$ALL_PROXY}
echo "plain: $(curl -sS http://allowed.test:` + p + `/plain)"
echo "connect: $(curl -sS -p http://allowed.test:` + p + `/connect)"
echo "socks: $(curl -sS -x "$socks" http://allowed.test:` + p + `/socks)"
git clone -q https://git.test:` + gitPort + `/repo.git ` + clone + ` && echo "git: $(cat ` + clone + `/README)"
echo "denied plain: $(code http://denied.test:` + p + `/)"
echo "denied connect: $(code -p http://denied.test:` + p + `/)"
echo "squid denies plain: $(curl -sS -i http://squid-denied.test:` + p + `/ | tr -d '\r' | grep -E '^HTTP|^regate:' | tr '\n' '|')"
echo "squid denies connect: $(code -p http://squid-denied.test:` + p + `/)"
echo "pinned private: $(code -p http://internal.test:` + p + `/)"
echo "private literal: $(code -p http://10.1.2.3:` + p + `/)"
`
	env := append(gitEnv(home), "GIT_SSL_NO_VERIFY=1")
	res := regate(t, env, append(flags, "--", "sh", "-c", script)...)
	wantCode(t, res, 0)
	for _, want := range []string{
		"plain: hello from upstream: GET /plain",
		"connect: hello from upstream: GET /connect",
		"socks: hello from upstream: GET /socks",
		"git: cloned through regate",
		"denied plain: 403 000 0",
		"denied connect: 000 403 56",
		"squid denies plain: HTTP/1.1 502 Bad Gateway|regate: upstream proxy refused: 403 Forbidden|",
		"squid denies connect: 000 502 56",
		"pinned private: 000 403 56",  // the SSRF guard checks pins before the parent
		"private literal: 000 403 56", // and addresses the client named
	} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q\nstdout:\n%s\nstderr:\n%s", want, res.stdout, res.stderr)
		}
	}
	if want := "to squid-denied.test:" + p + " failed — upstream proxy refused: 403 Forbidden"; !strings.Contains(res.stderr, want) {
		t.Errorf("summary lacks %q:\n%s", want, res.stderr)
	}
	log := sq.log(t)
	for _, want := range []string{
		"GET http://allowed.test:" + p + "/plain",
		"CONNECT allowed.test:" + p,
		"CONNECT git.test:" + gitPort,
		"squid-denied.test",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("squid's log lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "//denied.test") || strings.Contains(log, "CONNECT denied.test") || strings.Contains(log, "internal.test") || strings.Contains(log, "10.1.2.3") {
		t.Errorf("a destination regate denied reached squid:\n%s", log)
	}

	// Wrong credentials: a 502 naming the parent's 407; the child never
	// sees a 407.
	bad := []string{"run", "--allow", "allowed.test", "--allow-cidr", "127.0.0.0/8", "--upstream-proxy", sq.url("wrong-" + squidPassword)}
	res2 := regate(t, nil, append(bad, "--", "sh", "-c", `
curl -sS -i http://allowed.test:`+p+`/ | tr -d '\r' | grep -E '^HTTP|^regate:' | tr '\n' '|'; echo
curl -sS -o /dev/null -w 'connect %{http_connect}\n' -p http://allowed.test:`+p+`/ 2>/dev/null`)...)
	for _, want := range []string{
		"HTTP/1.1 502 Bad Gateway|regate: upstream proxy refused: 407 Proxy Authentication Required|",
		"connect 502",
	} {
		if !strings.Contains(res2.stdout, want) {
			t.Errorf("wrong credentials: output lacks %q\n%s\n%s", want, res2.stdout, res2.stderr)
		}
	}
	if strings.Contains(res2.stdout, "HTTP/1.1 407") || strings.Contains(res2.stdout, "connect 407") {
		t.Errorf("the child saw a 407:\n%s", res2.stdout)
	}

	// regate check names the parent without the password and says it answers.
	res3 := regate(t, nil, "check", "--upstream-proxy", sq.url(squidPassword))
	if !strings.Contains(res3.stdout, "upstream proxy: http://alice:***@"+sq.addr) || !strings.Contains(res3.stdout, "answers") {
		t.Errorf("check:\n%s\n%s", res3.stdout, res3.stderr)
	}

	for _, out := range []string{res.stdout, res.stderr, res2.stdout, res2.stderr, res3.stdout, res3.stderr} {
		if strings.Contains(out, squidPassword) {
			t.Errorf("the parent's password appears in regate's output:\n%s", out)
		}
	}
}

// TestUpstreamProxyByAddressAndDirect: upstream_connect: address asks the
// parent for the address regate checked (squid logs the IP, the request
// succeeds); no_upstream destinations are dialled directly; proxy.upstream
// env takes regate's own proxy variables, not the child's.
func TestUpstreamProxyByAddressAndDirect(t *testing.T) {
	need(t, "curl", "sh")
	sq := startSquidParent(t, "allowed.test")
	up := newUpstream(t)
	p := up.port()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "regate.yaml", `proxy:
  upstream: `+sq.url(squidPassword)+`
  upstream_connect: address
  no_upstream: [direct.test]
`)
	res := regate(t, nil, "run", "--config", cfg, "--allow", "allowed.test", "--allow", "direct.test", "--allow-cidr", "127.0.0.0/8",
		"--resolve", "allowed.test:127.0.0.1", "--resolve", "direct.test:127.0.0.1", "--", "sh", "-c", `
echo "by address: $(curl -sS -p http://allowed.test:`+p+`/addr)"
echo "plain by address: $(curl -sS http://allowed.test:`+p+`/plainaddr)"
echo "direct: $(curl -sS -p http://direct.test:`+p+`/direct)"`)
	wantCode(t, res, 0)
	for _, want := range []string{"by address: hello from upstream: GET /addr", "plain by address: hello from upstream: GET /plainaddr", "direct: hello from upstream: GET /direct"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("output lacks %q\n%s\n%s", want, res.stdout, res.stderr)
		}
	}
	log := sq.log(t)
	if !strings.Contains(log, "CONNECT 127.0.0.1:"+p) { // plain requests too are tunnelled to the address
		t.Errorf("squid's log lacks the checked address:\n%s", log)
	}
	if strings.Contains(log, "allowed.test") || strings.Contains(log, "direct") {
		t.Errorf("squid's log has a name or the direct destination:\n%s", log)
	}

	// proxy.upstream env: regate's own HTTP(S)_PROXY; the child's are regate's.
	before := len(sq.log(t))
	env := []string{"HTTPS_PROXY=" + sq.url(squidPassword), "HTTP_PROXY=" + sq.url(squidPassword)}
	res = regate(t, env, "run", "--upstream-proxy", "env", "--allow", "allowed.test", "--allow-cidr", "127.0.0.0/8", "--", "sh", "-c", `
echo "child proxy: $HTTPS_PROXY"
echo "env: $(curl -sS -p http://allowed.test:`+p+`/env)"`)
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, "env: hello from upstream: GET /env") || strings.Contains(res.stdout, "child proxy: "+sq.url(squidPassword)) {
		t.Errorf("upstream env:\n%s\n%s", res.stdout, res.stderr)
	}
	if log := sq.log(t)[before:]; !strings.Contains(log, "CONNECT allowed.test:"+p) {
		t.Errorf("squid's log lacks the env-chained CONNECT:\n%s", log)
	}
	for _, out := range []string{res.stderr} {
		if strings.Contains(out, squidPassword) {
			t.Errorf("the parent's password appears in regate's output:\n%s", out)
		}
	}
}

// TestUpstreamProxyUnderIsolation: a transparent flow of --isolate goes
// through the parent too, by the name the program looked up.
func TestUpstreamProxyUnderIsolation(t *testing.T) {
	need(t, "curl", "sh")
	needIsolation(t)
	sq := startSquidParent(t, "allowed.test")
	up := newUpstream(t)
	p := up.port()
	res := regate(t, nil, "run", "--isolate", "--allow", "allowed.test", "--allow-cidr", "127.0.0.0/8",
		"--upstream-proxy", sq.url(squidPassword), "--", "sh", "-c",
		`echo "transparent: $(curl -sS --noproxy '*' http://allowed.test:`+p+`/transparent)"`)
	wantCode(t, res, 0)
	if !strings.Contains(res.stdout, "transparent: hello from upstream: GET /transparent") {
		t.Errorf("transparent flow through the parent:\n%s\n%s", res.stdout, res.stderr)
	}
	if log := sq.log(t); !strings.Contains(log, "allowed.test:"+p) {
		t.Errorf("squid's log lacks the transparent flow:\n%s", log)
	}
}
