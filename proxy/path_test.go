package proxy

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/regate/regate/engine"
)

func TestCleanPath(t *testing.T) {
	tests := []struct {
		name, in, want string // want "" means refused
	}{
		{"empty", "", "/"},
		{"root", "/", "/"},
		{"plain", "/a/b", "/a/b"},
		{"trailing slash kept", "/a/b/", "/a/b/"},
		{"dot-dot", "/ok/../admin", "/admin"},
		{"dot-dot encoded", "/ok/%2e%2e/admin", "/admin"},
		{"dot-dot upper-case encoding", "/ok/%2E%2E/admin", "/admin"},
		{"dot-dot half encoded", "/ok/%2E./admin", "/admin"},
		{"dot-dot other half encoded", "/ok/.%2e/admin", "/admin"},
		{"dot", "/ok/./admin", "/ok/admin"},
		{"dot encoded", "/ok/%2e/admin", "/ok/admin"},
		{"above the root", "/../../etc/passwd", "/etc/passwd"},
		{"trailing dot-dot", "/a/b/..", "/a/"},
		{"trailing dot", "/a/b/.", "/a/b/"},
		{"double slash", "//admin", "/admin"},
		{"double slashes inside", "/ok//..//admin", "/admin"},
		{"semicolon parameters", "/ok;x=1/a", "/ok;x=1/a"},
		{"space", "/a%20b", "/a b"},
		{"unicode", "/%C3%A9t%C3%A9", "/été"},
		{"encoded percent", "/100%25", "/100%"},
		{"encoded slash", "/ok/..%2fadmin", ""},
		{"encoded slash upper", "/ok%2F..%2F..%2Fadmin", ""},
		{"encoded backslash", "/ok/%5c../admin", ""},
		{"raw backslash", `/ok/\../admin`, ""},
		{"NUL", "/a%00b", ""},
		{"CR", "/a%0db", ""},
		{"DEL", "/a%7f", ""},
		{"dot-dot with parameters", "/ok/..;/admin", ""},
		{"dot with parameters", "/ok/.;x/admin", ""},
		{"encoded dot-dot with parameters", "/ok/%2e%2e;/admin", ""},
		{"overlong dot", "/ok/%c0%ae%c0%ae/admin", ""},
		{"overlong slash", "/ok%c0%afadmin", ""},
		{"three dots", "/ok/.../admin", ""},
		{"bad escape", "/a%zz", ""},
		{"not absolute", "a/b", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cleanPath(tc.in)
			if tc.want == "" {
				if err == nil || !errors.Is(err, errBadPath) {
					t.Fatalf("cleanPath(%q) = %q, %v; want refused", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("cleanPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// FuzzCleanPath: a clean path is stable (cleaning it again, as upstream
// would after Go re-encodes it, gives the same path), has no dot segment,
// no empty segment but a trailing one, and nothing a refused input holds.
func FuzzCleanPath(f *testing.F) {
	for _, s := range []string{"/", "/a/../b", "/%2e%2e/x", "//a//b/", "/a;b/..;/c", "/%c0%ae", "/a%2fb", "/été/./x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := cleanPath(in)
		if err != nil {
			return
		}
		if !strings.HasPrefix(got, "/") {
			t.Fatalf("%q → %q: not absolute", in, got)
		}
		enc := (&url.URL{Path: got}).EscapedPath()
		again, err := cleanPath(enc)
		if err != nil || again != got {
			t.Fatalf("%q → %q → %q → %q, %v: not stable", in, got, enc, again, err)
		}
		segs := strings.Split(got[1:], "/")
		for i, s := range segs {
			if s == "." || s == ".." || (s == "" && i != len(segs)-1) {
				t.Fatalf("%q → %q: segment %q", in, got, s)
			}
			if strings.ContainsAny(s, "\\\x00") {
				t.Fatalf("%q → %q: segment %q", in, got, s)
			}
		}
	})
}

// TestPlainHTTPPathIsWhatUpstreamGets: a policy allowing only /ok/ cannot
// be walked out of with dot segments in any spelling; upstream receives
// exactly the path the policy decided on, and what cannot be made equal is
// refused before any decision.
func TestPlainHTTPPathIsWhatUpstreamGets(t *testing.T) {
	got := make(chan string, 16)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.RequestURI
	}))
	t.Cleanup(up.Close)
	port := portOf(t, up.URL)
	d := &fakeDecider{fn: func(in engine.Input) (engine.Decision, error) {
		if strings.HasPrefix(in.Path, "/ok/") {
			return engine.Decision{Allow: true, ID: "ok"}, nil
		}
		return engine.Decision{Reason: "path " + in.Path + " is not under /ok/", ID: "no"}, nil
	}}
	h := startProxy(t, testConfig(), d)
	tests := []struct {
		name, path string
		status     int
		decided    string // the path the policy saw
		upstream   string // the request-target upstream received
	}{
		{"inside", "/ok/a?q=1", 200, "/ok/a", "/ok/a?q=1"},
		{"dot-dot out", "/ok/../admin", 403, "/admin", ""},
		{"encoded dot-dot out", "/ok/%2e%2e/admin", 403, "/admin", ""},
		{"mixed-case encoded dot-dot out", "/ok/%2E./admin", 403, "/admin", ""},
		{"dot-dot staying inside", "/ok/x/../y", 200, "/ok/y", "/ok/y"},
		{"double slash", "/ok//a", 200, "/ok/a", "/ok/a"},
		{"space re-encoded", "/ok/a%20b", 200, "/ok/a b", "/ok/a%20b"},
		{"encoded slash", "/ok/..%2fadmin", 400, "", ""},
		{"encoded backslash", "/ok/..%5cadmin", 400, "", ""},
		{"dot-dot with parameters", "/ok/..;/admin", 400, "", ""},
		{"overlong dot-dot", "/ok/%c0%ae%c0%ae/admin", 400, "", ""},
		{"NUL", "/ok/%00", 400, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(d.calls())
			resp := rawRequest(t, h.httpAddr, "GET http://allowed.test:"+port+tc.path+" HTTP/1.1\r\nHost: allowed.test:"+port+"\r\nConnection: close\r\n\r\n")
			if !strings.HasPrefix(resp, "HTTP/1.1 "+strconv.Itoa(tc.status)) {
				t.Fatalf("got %q, want %d", statusLine(resp), tc.status)
			}
			calls := d.calls()[before:]
			if tc.decided == "" {
				if len(calls) != 0 {
					t.Fatalf("decided %+v", calls)
				}
			} else if len(calls) != 1 || calls[0].Path != tc.decided {
				t.Fatalf("decided %+v, want path %q", calls, tc.decided)
			}
			select {
			case uri := <-got:
				if uri != tc.upstream {
					t.Fatalf("upstream received %q, want %q", uri, tc.upstream)
				}
			default:
				if tc.upstream != "" {
					t.Fatal("upstream received nothing")
				}
			}
		})
	}
}
