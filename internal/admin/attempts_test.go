package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// created is the answer to POST /v1/attempts.
type created struct {
	Result struct {
		ID, Token string
		Labels    map[string]string
		Allow     []string
		Expires   *time.Time
		Env       map[string]string
	}
}

func (f *fixture) register(t *testing.T, body string) created {
	t.Helper()
	var c created
	f.unix.do(t, "POST", "/v1/attempts", body).want(t, http.StatusCreated).decode(t, &c)
	return c
}

func TestAttemptsThroughTheProxy(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.register(t, `{"id": "job-1", "labels": {"team": "red"}, "allow": ["allowed.test"]}`)
	if c.Result.ID != "job-1" || len(c.Result.Token) != 32 || c.Result.Labels["team"] != "red" {
		t.Fatalf("created %+v", c.Result)
	}
	proxyURL, err := url.Parse(c.Result.Env["HTTP_PROXY"])
	if err != nil || proxyURL.User.Username() != "job-1" || "http://"+proxyURL.Host != f.proxyURL {
		t.Fatalf("env HTTP_PROXY = %q", c.Result.Env["HTTP_PROXY"])
	}
	if c.Result.Env["REGATE_ATTEMPT_ID"] != "job-1" || c.Result.Env["NO_PROXY"] != "" {
		t.Errorf("env = %v", c.Result.Env)
	}

	f.wantGet(t, "allowed.test", proxyURL.User, http.StatusOK) // the attempt's own allow list
	f.wantGet(t, "allowed.test", nil, http.StatusForbidden)    // not for anonymous clients
	f.wantGet(t, "allowed.test", url.UserPassword("job-1", "wrong"), http.StatusProxyAuthRequired)

	for _, path := range []string{"/v1/attempts", "/v1/attempts/job-1"} {
		a := f.unix.do(t, "GET", path, "").want(t, http.StatusOK)
		if !strings.Contains(a.body, `"job-1"`) || strings.Contains(a.body, c.Result.Token) || strings.Contains(a.body, "token") {
			t.Errorf("GET %s shows %s", path, a.body)
		}
	}
	f.unix.do(t, "POST", "/v1/attempts", `{"id": "job-1"}`).want(t, http.StatusConflict)

	f.unix.do(t, "DELETE", "/v1/attempts/job-1", "").want(t, http.StatusNoContent)
	f.wantGet(t, "allowed.test", proxyURL.User, http.StatusProxyAuthRequired)
	f.unix.do(t, "DELETE", "/v1/attempts/job-1", "").want(t, http.StatusNotFound)
	f.unix.do(t, "GET", "/v1/attempts/job-1", "").want(t, http.StatusNotFound)

	anon := f.register(t, `{}`)
	if len(anon.Result.ID) != 32 || anon.Result.ID == anon.Result.Token {
		t.Errorf("generated id %q, token %q", anon.Result.ID, anon.Result.Token)
	}
}

func TestAttemptLabelsReachRego(t *testing.T) {
	f := newFixture(t, fixtureOpts{policies: []string{writePolicy(t, map[string]string{"base.rego": basePolicy})}})
	f.unix.do(t, "PUT", "/v1/policies/teams", `package regate.network

decision := {"allow": true, "reason": "red team", "rule": "team"} if input.attempt.labels.team == "red"
`).want(t, http.StatusOK)
	red := f.register(t, `{"labels": {"team": "red"}}`)
	blue := f.register(t, `{"labels": {"team": "blue"}}`)
	f.wantGet(t, "allowed.test", url.UserPassword(red.Result.ID, red.Result.Token), http.StatusOK)
	f.wantGet(t, "allowed.test", url.UserPassword(blue.Result.ID, blue.Result.Token), http.StatusForbidden)
}

func TestAttemptExpiry(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	c := f.register(t, `{"allow": ["allowed.test"], "ttl": "300ms"}`)
	if c.Result.Expires == nil {
		t.Fatal("no expiry in the answer")
	}
	user := url.UserPassword(c.Result.ID, c.Result.Token)
	f.wantGet(t, "allowed.test", user, http.StatusOK)
	time.Sleep(time.Until(*c.Result.Expires) + 10*time.Millisecond)
	f.wantGet(t, "allowed.test", user, http.StatusProxyAuthRequired)
	eventually(t, func() error { // the sweeper removes it
		if a := f.unix.do(t, "GET", "/v1/attempts/"+c.Result.ID, ""); a.status != http.StatusNotFound {
			return fmt.Errorf("expired attempt still listed: %d", a.status)
		}
		return nil
	})
	if m := f.unix.do(t, "GET", "/metrics", "").body; !strings.Contains(m, "regate_attempts_expired_total 1") {
		t.Errorf("metrics lack regate_attempts_expired_total 1")
	}
}

func TestAttemptValidation(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	tests := []struct{ name, body, wants string }{
		{"bad pattern", `{"allow": ["a b"]}`, `allow[0]`},
		{"star in deny", `{"deny": ["*"]}`, `is for allow lists only`},
		{"id with a colon", `{"id": "a:b"}`, `only letters`},
		{"id with a slash", `{"id": "a/b"}`, `only letters`},
		{"long id", `{"id": "` + strings.Repeat("a", 129) + `"}`, `longer than`},
		{"unknown field", `{"lables": {}}`, `unknown field`},
		{"label not a string", `{"labels": {"n": 1}}`, `decoding`},
		{"bad ttl", `{"ttl": "soon"}`, `ttl`},
		{"negative ttl", `{"ttl": -5}`, `negative`},
		{"two values", `{} {}`, `unexpected data`},
		{"not JSON", `id=x`, `decoding`},
		{"empty body", ``, `empty body`},
		{"secrets where none is held", `{"secrets": ["github"]}`, `holds no secrets`},
		{"empty secret name", `{"secrets": [""]}`, `names must be`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := f.unix.do(t, "POST", "/v1/attempts", tc.body).want(t, http.StatusBadRequest)
			if a.errorCode() != "invalid_parameter" || !strings.Contains(a.body, tc.wants) {
				t.Errorf("body %s, want invalid_parameter mentioning %q", a.body, tc.wants)
			}
		})
	}
	if n := f.attempts.Len(); n != 0 {
		t.Errorf("%d attempts registered by refused requests", n)
	}
}

// TestAttemptAudit: an attempt registered with "audit": true gets what
// the policy denies, another attempt to the same destination does not;
// the attempt's view says so.
func TestAttemptAudit(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	audited := f.register(t, `{"id": "learn", "audit": true}`)
	plain := f.register(t, `{"id": "enforce"}`)
	f.wantGet(t, "other.test", url.UserPassword(plain.Result.ID, plain.Result.Token), http.StatusForbidden)
	f.wantGet(t, "other.test", url.UserPassword(audited.Result.ID, audited.Result.Token), http.StatusOK)
	f.wantGet(t, "other.test", url.UserPassword(plain.Result.ID, plain.Result.Token), http.StatusForbidden)
	if v := f.unix.do(t, "GET", "/v1/attempts/learn", "").want(t, http.StatusOK); !strings.Contains(v.body, `"audit":true`) {
		t.Errorf("audited attempt's view: %s", v.body)
	}
	if v := f.unix.do(t, "GET", "/v1/attempts/enforce", "").want(t, http.StatusOK); !strings.Contains(v.body, `"audit":false`) {
		t.Errorf("enforced attempt's view: %s", v.body)
	}
	f.unix.do(t, "POST", "/v1/attempts", `{"audit": "yes"}`).want(t, http.StatusBadRequest)
}
