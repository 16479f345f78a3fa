package admin

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/regate/regate/internal/attempt"
)

func TestTokenRequiredOverTCP(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	tests := []struct {
		name, header string
		want         int
	}{
		{"no header", "", http.StatusUnauthorized},
		{"wrong token", "Bearer nope-nope-nope-nope-nope", http.StatusUnauthorized},
		{"basic scheme", "Basic " + f.token, http.StatusUnauthorized},
		{"right token", "Bearer " + f.token, http.StatusOK},
		{"scheme case-insensitive", "bearer " + f.token, http.StatusOK},
	}
	anon := &client{base: f.tcp.base, c: f.tcp.c}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/health", "/v1/status", "/metrics", "/v1/data/regate", "/v1/attempts", "/nope"} {
				a := anon.do(t, "GET", path, "", "Authorization", tc.header)
				if tc.want == http.StatusOK {
					if a.status == http.StatusUnauthorized {
						t.Errorf("%s: 401 with the right token", path)
					}
					continue
				}
				if a.status != tc.want || a.errorCode() != "unauthorized" || a.header.Get("WWW-Authenticate") == "" {
					t.Errorf("%s: %d %s, want 401 unauthorized with WWW-Authenticate", path, a.status, a.body)
				}
			}
		})
	}
	// Over the unix socket, file permissions are the access control.
	f.unix.do(t, "GET", "/v1/status", "").want(t, http.StatusOK)
}

func TestServeRefusesTCPWithoutToken(t *testing.T) {
	e := startEngine(t, nil, nil)
	s, err := New(Config{Engine: e, Attempts: attempt.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(t.Context())
	l := tcpListen(t)
	defer l.Close()
	if err := s.Serve(l); err == nil || !strings.Contains(err.Error(), "needs a bearer token") {
		t.Fatalf("Serve = %v", err)
	}
}

func TestLoadToken(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	tok, generated, err := LoadToken(path)
	if err != nil || !generated || len(tok) != 32 {
		t.Fatalf("generating: %q %v %v", tok, generated, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, generated, err := LoadToken(path)
	if err != nil || generated || again != tok {
		t.Fatalf("reading back: %q %v %v, want %q", again, generated, err, tok)
	}
	short := filepath.Join(dir, "short")
	if err := os.WriteFile(short, []byte("abc\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadToken(short); err == nil {
		t.Fatal("a 3-character token was accepted")
	}
	if _, _, err := LoadToken(filepath.Join(dir, "missing", "token")); err == nil {
		t.Fatal("a token in a missing directory was generated")
	}
}
