package admin

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/regate/regate/engine"
)

const basePolicy = `package regate.network

default decision := {"allow": false, "reason": "the base policy denies", "rule": "default"}
`

func TestPolicyUploadFlipsTheNextDecision(t *testing.T) {
	f := newFixture(t, fixtureOpts{policies: []string{writePolicy(t, map[string]string{"base.rego": basePolicy})}})
	f.wantGet(t, "allowed.test", nil, http.StatusForbidden)

	upload := `package regate.network

decision := {"allow": true, "reason": "uploaded at runtime", "rule": "uploaded"} if input.host == "allowed.test"
`
	f.unix.do(t, "PUT", "/v1/policies/runtime/allow.rego", upload, "Content-Type", "text/plain").want(t, http.StatusOK)
	f.wantGet(t, "allowed.test", nil, http.StatusOK)
	f.wantGet(t, "other.test", nil, http.StatusForbidden)

	var got struct {
		Result struct{ ID, Raw string }
	}
	f.unix.do(t, "GET", "/v1/policies/runtime/allow.rego", "").want(t, http.StatusOK).decode(t, &got)
	if got.Result.ID != "runtime/allow.rego" || got.Result.Raw != upload {
		t.Errorf("GET policy = %+v", got.Result)
	}

	t.Run("broken uploads change nothing", func(t *testing.T) {
		for name, body := range map[string]string{
			"parse error":   "package regate.network\n\ndecision := {\n",
			"compile error": "package regate.network\n\ndecision := {\"allow\": true} if undefined_function(1)\n",
			"empty":         "",
		} {
			a := f.unix.do(t, "PUT", "/v1/policies/runtime/allow.rego", body).want(t, http.StatusBadRequest)
			if a.errorCode() != "invalid_parameter" {
				t.Errorf("%s: body %s, want OPA's invalid_parameter error", name, a.body)
			}
			f.wantGet(t, "allowed.test", nil, http.StatusOK)
		}
	})

	f.unix.do(t, "DELETE", "/v1/policies/runtime/allow.rego", "").want(t, http.StatusOK)
	f.wantGet(t, "allowed.test", nil, http.StatusForbidden)
	f.unix.do(t, "GET", "/v1/policies/runtime/allow.rego", "").want(t, http.StatusNotFound)
}

func TestDataWritesTakeEffect(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.wantGet(t, "allowed.test", nil, http.StatusForbidden)

	f.unix.do(t, "PUT", "/v1/data/regate/allow", `["allowed.test"]`).want(t, http.StatusNoContent)
	f.wantGet(t, "allowed.test", nil, http.StatusOK)
	f.wantGet(t, "other.test", nil, http.StatusForbidden)

	patch := `[{"op": "add", "path": "-", "value": "other.test"}]`
	f.unix.do(t, "PATCH", "/v1/data/regate/allow", patch, "Content-Type", "application/json-patch+json").want(t, http.StatusNoContent)
	f.wantGet(t, "other.test", nil, http.StatusOK)

	var got struct{ Result []string }
	f.unix.do(t, "GET", "/v1/data/regate/allow", "").want(t, http.StatusOK).decode(t, &got)
	if strings.Join(got.Result, ",") != "allowed.test,other.test" {
		t.Errorf("data.regate.allow = %v", got.Result)
	}

	f.unix.do(t, "DELETE", "/v1/data/regate/allow", "").want(t, http.StatusNoContent)
	f.wantGet(t, "allowed.test", nil, http.StatusForbidden)

	// Object form, over TCP.
	f.tcp.do(t, "PUT", "/v1/data/regate/allow", `{"allowed.test": true}`).want(t, http.StatusNoContent)
	f.wantGet(t, "allowed.test", nil, http.StatusOK)

	t.Run("bad writes change nothing", func(t *testing.T) {
		f.unix.do(t, "PUT", "/v1/data/regate/allow", `{"other.test": `).want(t, http.StatusBadRequest)
		f.unix.do(t, "PATCH", "/v1/data/regate/allow", `[{"op": "frobnicate", "path": "/x"}]`).want(t, http.StatusBadRequest)
		// The first op would apply, the second fails: the whole patch is refused.
		f.unix.do(t, "PATCH", "/v1/data/regate/allow", `[{"op": "add", "path": "/other.test", "value": true}, {"op": "remove", "path": "/missing"}]`).want(t, http.StatusNotFound)
		f.wantGet(t, "allowed.test", nil, http.StatusOK)
		f.wantGet(t, "other.test", nil, http.StatusForbidden)
	})
}

func TestBundleRootsAreOwned(t *testing.T) {
	bundle := writePolicy(t, map[string]string{
		".manifest": `{"revision": "org-7", "roots": ["regate/org"]}`,
		"org.rego":  "package regate.org\n\nallowed contains \"allowed.test\"\n",
		"data.json": `{"regate": {"org": {"owner": "security"}}}`,
	})
	network := writePolicy(t, map[string]string{"network.rego": `package regate.network

default decision := {"allow": false, "reason": "not in the org list"}

decision := {"allow": true, "reason": "org"} if input.host in data.regate.org.allowed
`})
	f := newFixture(t, fixtureOpts{policies: []string{bundle, filepath.Join(network, "network.rego")}})
	f.wantGet(t, "allowed.test", nil, http.StatusOK)

	for _, tc := range []struct{ method, path, body string }{
		{"PUT", "/v1/data/regate/org/owner", `"me"`},
		{"PUT", "/v1/data/regate/org", `{}`},
		{"PATCH", "/v1/data/regate", `[{"op": "add", "path": "/org/x", "value": 1}]`},
		{"DELETE", "/v1/data/regate/org/owner", ""},
		{"PUT", "/v1/policies/sneaky.rego", "package regate.org\n\nallowed contains \"other.test\"\n"},
	} {
		a := f.unix.do(t, tc.method, tc.path, tc.body).want(t, http.StatusBadRequest)
		if !strings.Contains(a.body, "owned by bundle") {
			t.Errorf("%s %s: %s, want owned by bundle", tc.method, tc.path, a.body)
		}
	}
	f.wantGet(t, "other.test", nil, http.StatusForbidden)
	// Beside the bundle's root, writes are fine.
	f.unix.do(t, "PUT", "/v1/data/regate/team", `{"x": 1}`).want(t, http.StatusNoContent)

	var st statusAnswer
	f.unix.do(t, "GET", "/v1/status", "").want(t, http.StatusOK).decode(t, &st)
	if b := st.Result.Regate.Policy.Bundles; b[filepath.Clean(bundle)] != "org-7" {
		t.Errorf("status bundles = %v, want %s at org-7", b, bundle)
	}
}

// TestUploadsNeverDisturbDecisions decides continuously while policies are
// uploaded, replaced and deleted: every decision comes from one whole
// policy, never an error or a half-applied one.
func TestUploadsNeverDisturbDecisions(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.unix.do(t, "PUT", "/v1/data/regate/allow", `["allowed.test"]`).want(t, http.StatusNoContent)
	stop := make(chan struct{})
	bad := make(chan string, 1)
	go func() {
		in := engine.Input{Host: "allowed.test", Port: 443, Scheme: "https", Method: "CONNECT"}
		for {
			select {
			case <-stop:
				close(bad)
				return
			default:
			}
			if d, err := f.engine.Decide(context.Background(), in); err != nil || !d.Allow {
				bad <- fmt.Sprintf("%+v %v", d, err)
				return
			}
			time.Sleep(50 * time.Microsecond) // leave the uploads some CPU

		}
	}()
	for i := range 30 {
		body := fmt.Sprintf("package extra.p%d\n\nx := %d\n", i%3, i)
		if i%2 == 1 {
			body = "package extra\n\nbroken := {\n"
		}
		f.unix.do(t, "PUT", fmt.Sprintf("/v1/policies/p%d", i%3), body)
		if i%5 == 0 {
			f.unix.do(t, "DELETE", fmt.Sprintf("/v1/policies/p%d", i%3), "")
		}
	}
	close(stop)
	if msg, ok := <-bad; ok {
		t.Fatalf("a decision during uploads: %s", msg)
	}
}
