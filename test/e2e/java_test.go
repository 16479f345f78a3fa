package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// javaGet fetches each URL with java.net.http.HttpClient, which takes its
// proxy from the system properties JAVA_TOOL_OPTIONS sets and sends no
// proxy credentials, and prints "URL STATUS BODY" or "URL error …".
const javaGet = `import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public class Get {
    public static void main(String[] args) throws Exception {
        HttpClient client = HttpClient.newHttpClient();
        for (String u : args) {
            try {
                HttpResponse<String> r = client.send(HttpRequest.newBuilder(URI.create(u)).build(), HttpResponse.BodyHandlers.ofString());
                System.out.println(u + " " + r.statusCode() + " " + r.body().trim());
            } catch (Exception e) {
                System.out.println(u + " error " + e);
            }
        }
    }
}
`

// java runs javaGet with the JVM options opts.
func java(t *testing.T, src, opts string, urls ...string) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "java", append([]string{src}, urls...)...)
	cmd.Env = cleanEnv("JAVA_TOOL_OPTIONS=" + opts)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("java: %v\n%s", err, out)
	}
	return string(out)
}

// attemptCreated is the answer to POST /v1/attempts.
type attemptCreated struct {
	Result struct {
		ID, Token string
		Listeners map[string]string
		Env       map[string]string
	}
}

func createAttempt(t *testing.T, adm *adminClient, body string) attemptCreated {
	t.Helper()
	var c attemptCreated
	if err := json.Unmarshal([]byte(adm.want(t, "POST", "/v1/attempts", body, http.StatusCreated)), &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// connectStatus is what curl saw of its CONNECT (%{http_connect}).
func connectStatus(t *testing.T, args ...string) string {
	t.Helper()
	out, _ := exec.Command("curl", append([]string{"-s", "-o", "/dev/null", "-w", "%{http_connect}", "-p"}, args...)...).Output()
	return string(out)
}

// refused reports whether nothing listens on addr any more.
func refused(addr string) bool {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// Under serve, the JVM (no proxy credentials) is refused as anonymous;
// an attempt registered with "listeners": true gets an HTTP and a SOCKS5
// listener of its own on 127.0.0.1, and its env's JAVA_TOOL_OPTIONS makes
// Java's HttpClient its attempt. The listeners refuse other attempts'
// credentials, cannot be reached through the proxy itself, close with the
// attempt (removal or expiry) and cut what they accepted, and only
// proxy.max_attempt_listeners attempts have them at a time.
func TestServeAttemptListenersForTheJVM(t *testing.T) {
	need(t, "java", "curl")
	up := newUpstream(t)
	src := writeFile(t, t.TempDir(), "Get.java", javaGet)
	d := startServeWith(t, func(c *exec.Cmd) { c.Env = append(c.Env, "REGATE_PROXY_MAX_ATTEMPT_LISTENERS=2") },
		"--allow-anonymous=false", "--allow-cidr", "127.0.0.0/8",
		"--resolve", "allowed.test:127.0.0.1", "--resolve", "other.test:127.0.0.1")
	adm := newAdminClient(t, d.admin, "")
	jvm := createAttempt(t, adm, `{"id": "jvm-1", "allow": ["allowed.test"], "listeners": true}`)
	own := jvm.Result.Listeners
	for _, kind := range []string{"http", "socks5"} {
		if !strings.HasPrefix(own[kind], "127.0.0.1:") || own[kind] == d.http || own[kind] == d.socks {
			t.Fatalf("listeners %v: want the attempt's own %s listener on 127.0.0.1", own, kind)
		}
	}
	opts := jvm.Result.Env["JAVA_TOOL_OPTIONS"]
	if !strings.Contains(opts, "-Dhttp.proxyPort="+own["http"][len("127.0.0.1:"):]+" ") {
		t.Fatalf("JAVA_TOOL_OPTIONS = %q does not use the attempt's listener %s", opts, own["http"])
	}
	allowed := "http://allowed.test:" + up.port() + "/jvm"
	other := "http://other.test:" + up.port() + "/jvm"

	sharedPort := d.http[strings.LastIndexByte(d.http, ':')+1:]
	shared := java(t, src, "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort="+sharedPort+" -Dhttp.nonProxyHosts=", allowed)
	if !strings.Contains(shared, allowed+" 407") {
		t.Errorf("the JVM on the shared listener: %s, want 407 (anonymous refused)", shared)
	}
	got := java(t, src, opts, allowed, other)
	for _, want := range []string{allowed + " 200 hello from upstream: GET /jvm", other + " 403"} {
		if !strings.Contains(got, want) {
			t.Errorf("the JVM on the attempt's listener: %s, want %q", got, want)
		}
	}
	if mine := adm.want(t, "GET", "/v1/decisions?attempt_id=jvm-1", "", 200); !strings.Contains(mine, `"allowed.test"`) || !strings.Contains(mine, `"other.test"`) {
		t.Errorf("the JVM's decisions are not the attempt's: %s", mine)
	}
	if socks := curlStatus(t, "-x", "socks5h://"+own["socks5"], allowed); socks != "200" {
		t.Errorf("SOCKS5 without credentials on the attempt's listener: %s, want 200", socks)
	}

	// A malicious client: another attempt's credentials are refused there,
	// and tunnelling into the attempt's listener through the shared one
	// (to become the attempt) is refused as the proxy's own address.
	spy := createAttempt(t, adm, `{"id": "spy", "allow": ["127.0.0.1"]}`)
	spyCreds := spy.Result.ID + ":" + spy.Result.Token
	wantCurl(t, "407", "-x", "http://"+spyCreds+"@"+own["http"], allowed)
	if got := connectStatus(t, "-x", "http://"+spyCreds+"@"+d.http, "http://"+own["http"]+"/"); got != "403" {
		t.Errorf("CONNECT through the shared listener to the attempt's: %s, want 403", got)
	}

	// A tunnel open through the attempt's listener ends with the attempt.
	c, err := net.Dial("tcp", own["http"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT allowed.test:%s HTTP/1.1\r\nHost: allowed.test:%s\r\n\r\n", up.port(), up.port())
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect}); err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT on the attempt's listener: %v %v", resp, err)
	}
	adm.want(t, "DELETE", "/v1/attempts/jvm-1", "", http.StatusNoContent)
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second)) // reaching it is the tunnel outliving the attempt
	if _, err := io.ReadAll(br); err != nil && strings.Contains(err.Error(), "timeout") {
		t.Error("the tunnel outlived its attempt")
	}
	for kind, addr := range own {
		if !refused(addr) {
			t.Errorf("the %s listener %s outlived its attempt", kind, addr)
		}
	}

	// At most two attempts have listeners; an expired one frees its slot.
	short := createAttempt(t, adm, `{"id": "jvm-2", "listeners": true, "ttl": "1s"}`)
	createAttempt(t, adm, `{"id": "jvm-3", "listeners": true}`)
	if _, body := adm.do(t, "POST", "/v1/attempts", `{"id": "jvm-4", "listeners": true}`); !strings.Contains(body, "max_attempt_listeners 2") {
		t.Errorf("a third attempt with listeners: %s, want the limit", body)
	}
	adm.want(t, "GET", "/v1/attempts/jvm-4", "", http.StatusNotFound)
	waitUntil(t, "the expired attempt's listeners to close", func() bool {
		return refused(short.Result.Listeners["http"]) && refused(short.Result.Listeners["socks5"])
	})
	createAttempt(t, adm, `{"id": "jvm-4", "listeners": true}`)
}
