package proxy

import (
	"context"
	"github.com/regate/regate/internal/testenv"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// curl drives the proxy as real clients do.
func curl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	path, err := exec.LookPath("curl")
	if err != nil {
		testenv.Skip(t, "curl not installed")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	base := []string{"-sS", "-k", "--noproxy", "", "-o", "-", "-w", "\n%{http_code}"}
	out, err := exec.CommandContext(ctx, path, append(base, args...)...).CombinedOutput()
	return string(out), err
}

func TestCurl(t *testing.T) {
	plain := echoUpstream(t)
	tlsUp := httptest.NewTLSServer(http.HandlerFunc(echoHandler))
	t.Cleanup(tlsUp.Close)
	cfg := testConfig()
	cfg.AllowAnonymous = false
	cfg.Attempts = registry(t, attemptFixture("a1", "tok1"))
	h := startProxy(t, cfg, methodsDecider())
	httpProxy := "http://a1:tok1@" + h.httpAddr
	socks := "socks5h://a1:tok1@" + h.socksAddr
	pPort, tPort := portOf(t, plain.URL), portOf(t, tlsUp.URL)
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr bool
	}{
		{"-x plain", []string{"-x", httpProxy, "http://allowed.test:" + pPort + "/p"}, "GET /p body=\n200", false},
		{"-x https", []string{"-x", httpProxy, "https://allowed.test:" + tPort + "/t"}, "GET /t body=\n200", false},
		{"-p -x plain (tunnel)", []string{"-p", "-x", httpProxy, "http://allowed.test:" + pPort + "/q"}, "GET /q body=\n200", false},
		{"-x denied", []string{"-x", httpProxy, "http://denied.test:" + pPort + "/"}, "403", false},
		{"-x https denied", []string{"-x", httpProxy, "https://denied.test:" + tPort + "/"}, "403", true},
		{"-x wrong token", []string{"-x", "http://a1:bad@" + h.httpAddr, "http://allowed.test:" + pPort + "/"}, "407", false},
		{"--socks5-hostname", []string{"--socks5-hostname", h.socksAddr, "-U", "a1:tok1", "http://allowed.test:" + pPort + "/s"}, "GET /s body=\n200", false},
		{"socks5h:// https", []string{"-x", socks, "https://allowed.test:" + tPort + "/h"}, "GET /h body=\n200", false},
		{"socks5h:// denied", []string{"-x", socks, "http://denied.test:" + pPort + "/"}, "", true},
		// Read-only mode holds inside tunnels too.
		{"-p -x POST (tunnel)", []string{"-p", "-x", httpProxy, "-X", "POST", "http://allowed.test:" + pPort + "/w"}, "is read-only", false},
		{"socks5h:// DELETE", []string{"-x", socks, "-X", "DELETE", "http://allowed.test:" + pPort + "/w"}, "is read-only", false},
		{"-p -x other virtual host", []string{"-p", "-x", httpProxy, "-H", "Host: evil.test", "http://allowed.test:" + pPort + "/"}, "400", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := curl(t, tc.args...)
			if (err != nil) != tc.wantErr {
				t.Fatalf("curl error %v, want error=%v; output %q", err, tc.wantErr, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("output %q, want %q", out, tc.want)
			}
		})
	}
}
