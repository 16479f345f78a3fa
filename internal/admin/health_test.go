package admin

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
)

func TestHealth(t *testing.T) {
	var down atomic.Bool
	f := newFixture(t, fixtureOpts{ready: func() error {
		if down.Load() {
			return errors.New("the proxy listeners are not serving")
		}
		return nil
	}})
	if a := f.unix.do(t, "GET", "/health", "").want(t, http.StatusOK); strings.TrimSpace(a.body) != "{}" {
		t.Errorf("healthy body %q, want {} as OPA", a.body)
	}
	f.unix.do(t, "GET", "/health?bundles", "").want(t, http.StatusOK)
	f.unix.do(t, "GET", "/health?bundle=true", "").want(t, http.StatusOK)
	// The engine's own decision-log sink plugin does not report OK.
	f.unix.do(t, "GET", "/health?plugins&exclude-plugin=regate_decisions", "").want(t, http.StatusOK)

	down.Store(true)
	var got struct{ Error string }
	f.unix.do(t, "GET", "/health", "").want(t, http.StatusInternalServerError).decode(t, &got)
	if got.Error != "the proxy listeners are not serving" {
		t.Errorf("unhealthy reason %q", got.Error)
	}
	var st struct{ Result statusReport }
	f.unix.do(t, "GET", "/v1/status", "").want(t, http.StatusOK).decode(t, &st)
	if st.Result.Healthy || st.Result.Health == "" {
		t.Errorf("status while unhealthy: %+v", st.Result)
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.register(t, `{}`)
	f.wantGet(t, "other.test", nil, http.StatusForbidden)
	var st struct{ Result statusReport }
	f.unix.do(t, "GET", "/v1/status", "").want(t, http.StatusOK).decode(t, &st)
	r := st.Result
	switch {
	case !r.Healthy, !r.Policy.Loaded, r.Policy.Reloads != 1, r.Policy.LastReload.IsZero():
		t.Errorf("policy status %+v", r)
	case r.Attempts != 1, r.Decisions["deny"] != 1, r.UptimeSeconds <= 0, r.Version != "test":
		t.Errorf("counters %+v", r)
	case r.Listeners["http"] == "" || !strings.Contains(r.Listeners["admin"], "unix:"+f.socket) || !strings.Contains(r.Listeners["admin"], f.tcpAddr):
		t.Errorf("listeners %v", r.Listeners)
	}
}

func TestAdminNotReachableThroughTheProxy(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.unix.do(t, "PUT", "/v1/data/regate/allow", `["*"]`).want(t, http.StatusNoContent)
	// allow_cidrs opens 127.0.0.0/8 (the upstream is reached) but never the
	// admin listener.
	f.wantGet(t, "127.0.0.1", nil, http.StatusOK)
	pu, _ := url.Parse(f.proxyURL)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	resp, err := c.Get("http://" + f.tcpAddr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "own listening address") {
		t.Errorf("admin through the proxy: %d %s", resp.StatusCode, body)
	}
	// The proxy port does not serve the admin routes.
	resp, err = http.Get(f.proxyURL + "/health")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Errorf("GET /health on the proxy port: 200")
	}
}
