package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

// goal is what a row's figures are judged against (reported, never
// asserted): a ratio of at least ratio× base, for a latency row at most
// added µs over base or a latency of at most most× base's. The zero goal
// judges nothing.
type goal struct {
	only   string // the one target judged; "" for every regate target
	served bool   // only `regate serve` targets are judged (not in-process)
	base   string // targetDirect, targetSquid, targetRelay, baseTunnel or targetMitmproxy
	ratio  float64
	added  float64
	most   float64
	atMost float64 // a value of at most this (startup), no base
	// ofAdded judges, with most, the latency added over direct against
	// the one base adds (AddedVsSquid).
	ofAdded bool
}

// baseTunnel is the goal base of an inspected target: the plain tunnel
// of the same regate (tunnelOf).
const baseTunnel = "tunnel"

// The goals: the served binary's GET requests/s against Squid's, its
// CONNECT MB/s against the splice relay's and a new CONNECT's latency
// against Squid's (issue 14), regate chained to Squid against Squid alone
// (keep-alive GET), the sandbox's transparent path: bulk MB/s and the
// time a new connection adds, and HTTPS inspection: keep-alive requests/s
// against mitmproxy, download MB/s and the time a new request adds
// against the plain tunnel.
var (
	goalKeepAlive        = goal{served: true, base: targetSquid, ratio: 1.5}
	goalNewConn          = goal{served: true, base: targetSquid, ratio: 2}
	goalConnect          = goal{served: true, base: targetRelay, ratio: 1}
	goalSetupP50         = goal{served: true, base: targetSquid, most: 0.6, ofAdded: true}
	goalSetupP99         = goal{served: true, base: targetSquid, most: 1, ofAdded: true}
	goalTLSSetupP50      = goal{served: true, base: targetSquid, most: 0.6, ofAdded: true}
	goalTLSSetupP99      = goal{served: true, base: targetSquid, most: 1, ofAdded: true}
	goalSocksNewConn     = goal{served: true, base: targetMicrosocks, ratio: 1.2}
	goalSocksBulk        = goal{served: true, base: targetRelay, ratio: 1}
	goalMemory           = goal{served: true, base: targetSquid, most: 1.5}
	goalStartupRun       = goal{served: true, atMost: 50}
	goalStartupServe     = goal{served: true, atMost: 300}
	goalParentGET        = goal{base: targetSquid, ratio: 0.8}
	goalTransparentBulk  = goal{only: targetTransparent, base: targetDirect, ratio: 0.25}
	goalTransparentSetup = goal{only: targetTransparent, base: targetDirect, added: 1000}
	goalInspectGET       = goal{base: targetMitmproxy, ratio: 5}
	goalInspectBulk      = goal{base: baseTunnel, ratio: 0.5}
	goalInspectSetup     = goal{base: baseTunnel, added: 2000}
)

func (g goal) String() string {
	var s string
	switch {
	case g.atMost > 0:
		s = fmt.Sprintf("≤%g", g.atMost)
	case g.base == "":
		return ""
	case g.added > 0 && g.base == baseTunnel:
		s = fmt.Sprintf("adds ≤%.0fµs to the tunnel", g.added)
	case g.added > 0:
		s = fmt.Sprintf("adds ≤%.0fµs", g.added)
	case g.most > 0 && g.ofAdded:
		s = fmt.Sprintf("adds ≤%.2g× what %s adds", g.most, g.base)
	case g.most > 0:
		s = fmt.Sprintf("≤%.2g× %s's", g.most, g.base)
	default:
		s = fmt.Sprintf("≥%.2g× %s", g.ratio, g.base)
	}
	if g.only != "" {
		s = g.only + " " + s
	}
	return s
}

// met says whether target name meets the goal in w; ok is false where
// the goal does not apply or the ratio is missing.
func (g goal) met(w *row, name string) (met, ok bool) {
	if g.only != "" && name != g.only {
		return false, false
	}
	if g.atMost > 0 {
		v, ok := w.Values[name]
		return v <= g.atMost, ok
	}
	if g.base == "" {
		return false, false
	}
	base := g.base
	if base == baseTunnel {
		if base, ok = tunnelOf(name); !ok {
			return false, false
		}
	}
	v, ok := w.compare(name, base)
	if g.ofAdded {
		v, ok = w.AddedVsSquid[name]
	}
	switch {
	case !ok:
		return false, false
	case g.added > 0:
		return v <= g.added, true
	case g.most > 0:
		return v <= g.most, true
	}
	return v >= g.ratio, true
}

// report is the result of a run: the table's rows and the JSON line.
type report struct {
	Tool                string                        `json:"tool"`
	Time                time.Time                     `json:"time"`
	Go                  string                        `json:"go"`
	CPUs                int                           `json:"cpus"`
	GOMAXPROCS          int                           `json:"gomaxprocs"`
	Options             map[string]any                `json:"options"`
	Targets             []string                      `json:"targets"`
	Served              []string                      `json:"served,omitempty"` // the targets that are `regate serve` as its own process
	Squid               string                        `json:"squid_version,omitempty"`
	SquidSkipped        string                        `json:"squid_skipped,omitempty"`
	SquidAccessLogLines int                           `json:"squid_access_log_lines,omitempty"`
	ParentBinary        string                        `json:"parent_binary,omitempty"`
	ParentPinned        bool                          `json:"parent_pinned,omitempty"`
	ParentSkipped       string                        `json:"parent_skipped,omitempty"`
	ParentLookup        *lookupStats                  `json:"parent_lookup,omitempty"`
	IsolateBinary       string                        `json:"isolate_binary,omitempty"`
	IsolateSkipped      string                        `json:"isolate_skipped,omitempty"`
	InspectBinary       string                        `json:"inspect_binary,omitempty"`
	Mitmproxy           string                        `json:"mitmproxy_version,omitempty"`
	MitmproxySkipped    string                        `json:"mitmproxy_skipped,omitempty"`
	Wrk                 string                        `json:"wrk,omitempty"`
	WrkSkipped          string                        `json:"wrk_skipped,omitempty"`
	Microsocks          string                        `json:"microsocks,omitempty"`
	MicrosocksSkipped   string                        `json:"microsocks_skipped,omitempty"`
	MemorySkipped       string                        `json:"memory_skipped,omitempty"`
	FilesPerConn        map[string]map[string]float64 `json:"files_per_connection,omitempty"` // memory rows: descriptors a proxy holds per idle connection
	StartupRunHow       string                        `json:"startup_run_how,omitempty"`
	DecisionLog         map[string]logStats           `json:"decision_log"`
	Rows                []row                         `json:"rows"`
}

// row is one workload: a value per target, and the ratios (for latency
// rows: the microseconds added) against direct and Squid, the transparent
// path's against the sandbox's proxy path, and an inspected target's
// against its plain tunnel and mitmproxy.
type row struct {
	ID        string               `json:"id"`
	Title     string               `json:"title"`
	Unit      string               `json:"unit"`
	Latency   bool                 `json:"latency,omitempty"` // lower is better
	Values    map[string]float64   `json:"values"`
	Rounds    map[string][]float64 `json:"rounds,omitempty"`
	VsDirect  map[string]float64   `json:"vs_direct"`
	VsSquid   map[string]float64   `json:"vs_squid,omitempty"`
	OverSquid map[string]float64   `json:"over_squid_us,omitempty"` // µs added to Squid's latency where Squid is the baseline (no direct)
	// AddedVsSquid is, on a latency row with direct and Squid, the time a
	// target adds over direct against the time Squid adds.
	AddedVsSquid map[string]float64 `json:"added_vs_squid,omitempty"`
	VsRelay      map[string]float64 `json:"vs_relay,omitempty"`
	Errors       map[string]int64   `json:"errors,omitempty"`
	FirstErrors  map[string]string  `json:"first_errors,omitempty"`
	Reconnects   map[string]int64   `json:"reconnects,omitempty"`
	// UpstreamConnsPerOp is upstream connections opened per request (GET
	// rows): ~1 directly with new connections, ~0 for a pooling proxy.
	UpstreamConnsPerOp map[string]float64 `json:"upstream_conns_per_request,omitempty"`
	// VsIsolateProxy is the transparent path against the proxy path from
	// the same sandbox.
	VsIsolateProxy map[string]float64 `json:"vs_isolate_proxy,omitempty"`
	// VsTunnel is an inspected target against the plain tunnel of the
	// same regate (for latency rows: the µs added); VsMitmproxy, against
	// mitmproxy.
	VsTunnel    map[string]float64 `json:"vs_tunnel,omitempty"`
	VsMitmproxy map[string]float64 `json:"vs_mitmproxy,omitempty"`
	// VsInspect is a secret-sending target against the same regate
	// inspecting without one: what the swap adds.
	VsInspect map[string]float64 `json:"vs_inspect,omitempty"`
	Goal      string             `json:"goal,omitempty"`
	GoalMet   map[string]bool    `json:"goal_met,omitempty"`
	goal      goal
}

func newReport(o options) *report {
	return &report{
		Tool: "regate-load", Time: time.Now().UTC(), Go: runtime.Version(),
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0),
		Options: map[string]any{
			"duration": o.duration.String(), "warmup": o.warmup.String(), "rounds": o.rounds,
			"clients": o.clients, "parent_pin": o.parentPin, "bulk_mib": o.bulkMiB, "isolate_bulk_mib": o.isolateMiB, "inspect_bulk_mib": o.inspectMiB, "samples": o.samples, "body_bytes": o.bodySize, "patterns": o.patterns,
			"wrk_connections": o.wrkConns, "wrk_duration": o.wrkDuration.String(), "memory_connections": o.memConns,
			"startup_runs": o.startupRuns, "startup_patterns": o.startupPatterns,
		},
		DecisionLog: map[string]logStats{}, FilesPerConn: map[string]map[string]float64{},
	}
}

func newRow(id, title, unit string, g goal) row {
	return row{ID: id, Title: title, Unit: unit, Values: map[string]float64{}, Rounds: map[string][]float64{},
		VsDirect: map[string]float64{}, VsSquid: map[string]float64{}, OverSquid: map[string]float64{}, AddedVsSquid: map[string]float64{}, VsRelay: map[string]float64{},
		VsIsolateProxy: map[string]float64{}, VsTunnel: map[string]float64{}, VsMitmproxy: map[string]float64{}, VsInspect: map[string]float64{}, Errors: map[string]int64{},
		FirstErrors: map[string]string{}, Reconnects: map[string]int64{}, GoalMet: map[string]bool{},
		UpstreamConnsPerOp: map[string]float64{}, Goal: g.String(), goal: g}
}

// addRate adds a throughput row: each target's total over its rounds.
func (r *report) addRate(id, title, unit string, samples map[string][]sample, value func(sample) float64, g goal, progress io.Writer) {
	w := newRow(id, title, unit, g)
	for _, name := range r.Targets {
		if _, ok := samples[name]; !ok {
			continue
		}
		var sum sample
		for _, s := range samples[name] {
			w.Rounds[name] = append(w.Rounds[name], round1(value(s)))
			sum.ops, sum.bytes, sum.dur = sum.ops+s.ops, sum.bytes+s.bytes, sum.dur+s.dur
			sum.errs, sum.reconnects, sum.upConns = sum.errs+s.errs, sum.reconnects+s.reconnects, sum.upConns+s.upConns
			if sum.firstErr == nil {
				sum.firstErr = s.firstErr
			}
		}
		w.Values[name] = round1(value(sum))
		w.Errors[name], w.Reconnects[name] = sum.errs, sum.reconnects
		if unit == "req/s" && sum.ops > 0 {
			w.UpstreamConnsPerOp[name] = round3(float64(sum.upConns) / float64(sum.ops))
		}
		if sum.firstErr != nil {
			w.FirstErrors[name] = sum.firstErr.Error()
		}
	}
	r.finish(&w)
	fmt.Fprintf(progress, "%-32s %s\n", title, roundsLine(w, r.Targets))
}

// addLatency adds the p50 and p99 rows of a setup latency, judged
// against g50 and g99: ids prefix-p50 and prefix-p99.
func (r *report) addLatency(prefix, title string, lat map[string]*latencies, n int, g50, g99 goal) {
	for _, p := range []struct {
		q float64
		g goal
	}{{0.50, g50}, {0.99, g99}} {
		q := int(p.q * 100)
		w := newRow(fmt.Sprintf("%s-p%d", prefix, q), fmt.Sprintf("%s, p%d (n=%d)", title, q, n), "µs", p.g)
		w.Latency = true
		for _, name := range r.Targets {
			l, ok := lat[name]
			if !ok {
				continue
			}
			w.Values[name] = round1(percentile(l.d, p.q))
			w.Errors[name] = l.errs
			if l.firstErr != nil {
				w.FirstErrors[name] = l.firstErr.Error()
			}
		}
		r.finish(&w)
	}
}

// finish computes the ratios and goals and drops empty maps. A rate
// ratio is the median over rounds of the ratio within each round (the
// targets of a round ran back to back), so drift in the machine's load
// cancels out; a latency row compares percentiles.
func (r *report) finish(w *row) {
	for _, name := range r.Targets {
		if _, ok := w.Values[name]; !ok || name == targetDirect {
			continue
		}
		if v, ok := w.compare(name, targetDirect); ok {
			w.VsDirect[name] = v
		}
		if name == targetSquid || name == targetRelay || name == targetMicrosocks {
			continue
		}
		if v, ok := w.compare(name, targetSquid); ok {
			w.VsSquid[name] = v
		}
		if _, direct := w.Values[targetDirect]; w.Latency && w.Unit == "µs" && !direct && w.Values[targetSquid] > 0 {
			w.OverSquid[name] = round1(w.Values[name] - w.Values[targetSquid])
		}
		if d, ok := w.Values[targetDirect]; ok && w.Latency && w.Unit == "µs" && w.Values[targetSquid] > d {
			w.AddedVsSquid[name] = round3((w.Values[name] - d) / (w.Values[targetSquid] - d))
		}
		if v, ok := w.compare(name, targetRelay); ok {
			w.VsRelay[name] = v
		}
		if v, ok := w.compare(name, targetIsolateProxy); ok && name == targetTransparent {
			w.VsIsolateProxy[name] = v
		}
		if base, inspected := tunnelOf(name); inspected {
			if v, ok := w.compare(name, base); ok {
				w.VsTunnel[name] = v
			}
			if v, ok := w.compare(name, targetMitmproxy); ok {
				w.VsMitmproxy[name] = v
			}
		}
		if base, ok := inspectedOf(name); ok {
			if v, ok := w.compare(name, base); ok {
				w.VsInspect[name] = v
			}
		}
		if w.goal.served && !slices.Contains(r.Served, name) {
			continue
		}
		if met, ok := w.goal.met(w, name); ok {
			w.GoalMet[name] = met
		}
	}
	for k, v := range w.Errors {
		if v == 0 {
			delete(w.Errors, k)
		}
	}
	for k, v := range w.Reconnects {
		if v == 0 {
			delete(w.Reconnects, k)
		}
	}
	r.Rows = append(r.Rows, *w)
}

// compare is name against base: the median per-round ratio of a rate
// row; for a latency row against direct or a plain tunnel the
// microseconds added, else the ratio of the latencies.
func (w *row) compare(name, base string) (float64, bool) {
	b, ok := w.Values[base]
	if !ok || b <= 0 {
		return 0, false
	}
	v := w.Values[name]
	switch {
	case w.Latency && (base == targetDirect || strings.HasSuffix(base, tunnelSuffix) || strings.HasSuffix(base, inspectSuffix)):
		return round1(v - b), true
	case w.Latency:
		return round3(v / b), true
	}
	var ratios []float64
	for i, x := range w.Rounds[name] {
		if i < len(w.Rounds[base]) && w.Rounds[base][i] > 0 {
			ratios = append(ratios, x/w.Rounds[base][i])
		}
	}
	if len(ratios) == 0 {
		return 0, false
	}
	return round3(median(ratios)), true
}

// addTarget adds a target measured by a workload that starts its own
// (memory, startup) to the table's columns, once.
func (r *report) addTarget(name string) {
	if !slices.Contains(r.Targets, name) {
		r.Targets = append(r.Targets, name)
	}
}

// measured reports whether a row has a value for target name.
func (r *report) measured(name string) bool {
	for _, w := range r.Rows {
		if _, ok := w.Values[name]; ok {
			return true
		}
	}
	return false
}

func median(v []float64) float64 {
	slices.Sort(v)
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func roundsLine(w row, targets []string) string {
	var parts []string
	for _, name := range targets {
		if rs, ok := w.Rounds[name]; ok {
			parts = append(parts, fmt.Sprintf("%s %v", name, rs))
		}
	}
	return strings.Join(parts, "  ")
}

func round1(v float64) float64 { return math.Round(v*10) / 10 }
func round3(v float64) float64 { return math.Round(v*1000) / 1000 }
