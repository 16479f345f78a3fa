package admin

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// scrape returns the samples of /metrics, "name{labels}" → value.
func (f *fixture) scrape(t *testing.T) map[string]float64 {
	t.Helper()
	a := f.unix.do(t, "GET", "/metrics", "").want(t, http.StatusOK)
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(a.body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// sum adds the samples whose name (with labels) starts with prefix.
func sum(m map[string]float64, prefix string) float64 {
	var n float64
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

func TestMetricsMove(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	before := f.scrape(t)
	f.unix.do(t, "PUT", "/v1/data/regate/allow", `["allowed.test"]`).want(t, http.StatusNoContent)
	f.register(t, `{}`)
	f.wantGet(t, "allowed.test", nil, http.StatusOK)
	f.wantGet(t, "other.test", nil, http.StatusForbidden)
	after := f.scrape(t)

	moved := []string{
		`regate_decisions_total{reason_class="allow",result="allow"}`,
		`regate_decisions_total{reason_class="default",result="deny"}`,
		`regate_decision_duration_seconds_count`,
		`regate_admin_requests_total{code="201",route="POST /v1/attempts"}`,
		`regate_admin_requests_total{code="204",route="PUT /v1/data/{path...}"}`,
		`regate_attempts_registered`,
	}
	for _, name := range moved {
		if after[name] <= before[name] {
			t.Errorf("%s did not move: %v → %v", name, before[name], after[name])
		}
	}
	present := []string{
		`regate_policy_reloads_total{result="success"}`,
		`regate_connections_active{listener="http"}`,
		`regate_decision_log_dropped_total`,
	}
	for _, name := range present {
		if _, ok := after[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if sum(after, "regate_policy_revision_info") != 0 {
		t.Errorf("revision info without bundles")
	}
}
