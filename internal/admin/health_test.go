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
	var st statusAnswer
	f.unix.do(t, "GET", "/v1/status", "").want(t, http.StatusOK).decode(t, &st)
	if st.Result.Regate.Healthy || st.Result.Regate.Health == "" {
		t.Errorf("status while unhealthy: %+v", st.Result.Regate)
	}
}

func TestStatus(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	f.register(t, `{}`)
	f.wantGet(t, "other.test", nil, http.StatusForbidden)
	var st statusAnswer
	f.unix.do(t, "GET", "/v1/status", "").want(t, http.StatusOK).decode(t, &st)
	if id := st.Result.Labels["id"]; len(id) != 36 || st.Result.Labels["app"] != "regate" || st.Result.Labels["version"] == "" {
		t.Errorf("OPA's labels %v: want a UUID id, app and version", st.Result.Labels)
	}
	if _, ok := st.Result.Plugins["discovery"]; !ok {
		t.Errorf("OPA's plugins %v lack discovery", st.Result.Plugins)
	}
	r := st.Result.Regate
	if !r.Fresh || r.Policy.Plugins != nil {
		t.Errorf("regate status: fresh %v, plugins %v (reported once, at the top)", r.Fresh, r.Policy.Plugins)
	}
	switch {
	case !r.Healthy, !r.Policy.Loaded, r.Policy.Reloads != 1, r.Policy.LastReload.IsZero():
		t.Errorf("policy status %+v", r)
	case r.Attempts != 1, r.Decisions["deny"] != 1, r.UptimeSeconds <= 0, r.Version != "test":
		t.Errorf("counters %+v", r)
	case r.Listeners["http"] == "" || !strings.Contains(r.Listeners["admin"], "unix:"+f.socket) || !strings.Contains(r.Listeners["admin"], f.tcpAddr):
		t.Errorf("listeners %v", r.Listeners)
	}
}

// statusAnswer is GET /v1/status: OPA's status report, regate's own fields
// under "regate".
type statusAnswer struct {
	Result struct {
		Labels  map[string]string `json:"labels"`
		Plugins map[string]any    `json:"plugins"`
		Regate  regateStatus      `json:"regate"`
	} `json:"result"`
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
