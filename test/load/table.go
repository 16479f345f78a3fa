package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// writeJSON prints the report as one line.
func (r *report) writeJSON(w io.Writer) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// compared are the regate targets among targets (in-process, binaries,
// the sandbox's paths, inspecting), whose ratios a table shows; not the
// baselines (direct, Squid, the relay, regate's plain tunnels of the
// inspect workload, mitmproxy).
func compared(targets []string) []string {
	var out []string
	for _, name := range targets {
		switch {
		case name == targetDirect, name == targetSquid, name == targetRelay, name == targetMitmproxy, name == targetMicrosocks:
		case strings.HasSuffix(name, tunnelSuffix):
		default:
			out = append(out, name)
		}
	}
	return out
}

// writeTable prints the rows in up to four tables, the proxies'
// workloads, regate chained to Squid (parent), the sandbox's
// (transparent) and HTTPS inspection's, then the notes.
func (r *report) writeTable(out io.Writer) {
	var proxies, socks, footprint, chained, sandbox, inspect []row
	for _, w := range r.Rows {
		switch {
		case strings.HasPrefix(w.ID, "socks-"):
			socks = append(socks, w)
		case strings.HasPrefix(w.ID, workloadMemory), strings.HasPrefix(w.ID, workloadStartup):
			footprint = append(footprint, w)
		case strings.HasPrefix(w.ID, workloadInspect):
			inspect = append(inspect, w)
		case strings.HasPrefix(w.ID, workloadTransparent):
			sandbox = append(sandbox, w)
		case strings.HasPrefix(w.ID, workloadParent):
			chained = append(chained, w)
		default:
			proxies = append(proxies, w)
		}
	}
	first := true
	for _, rows := range [][]row{proxies, socks, footprint, chained, sandbox, inspect} {
		if len(rows) == 0 {
			continue
		}
		if !first {
			fmt.Fprintln(out)
		}
		first = false
		r.writeRows(out, rows)
	}
	r.writeNotes(out)
}

// writeRows prints a table: one column per target measured in rows, then
// the ratios of every regate target against direct and Squid (when
// measured), or an inspecting one's against its plain tunnel and
// mitmproxy, then the goal.
func (r *report) writeRows(out io.Writer, rows []row) {
	var targets []string
	for _, name := range r.Targets {
		if slices.ContainsFunc(rows, func(w row) bool { _, ok := w.Values[name]; return ok }) {
			targets = append(targets, name)
		}
	}
	withDirect, withSquid := slices.Contains(targets, targetDirect), slices.Contains(targets, targetSquid)
	withTunnel := slices.ContainsFunc(targets, func(name string) bool { return strings.HasSuffix(name, tunnelSuffix) })
	withMitmproxy := slices.Contains(targets, targetMitmproxy)
	withRelay := slices.Contains(targets, targetRelay)
	withMicrosocks := slices.Contains(targets, targetMicrosocks)
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	compared := compared(targets)
	head := append([]string{"workload", "unit"}, targets...)
	for _, name := range compared {
		if withDirect {
			head = append(head, name+"/direct")
		}
		if withSquid {
			head = append(head, name+"/squid")
		}
		if withRelay && slices.Contains(r.Served, name) {
			head = append(head, name+"/relay")
		}
		if withMicrosocks && slices.Contains(r.Served, name) {
			head = append(head, name+"/microsocks")
		}
		if withTunnel {
			head = append(head, name+"/tunnel")
		}
		if withMitmproxy {
			head = append(head, name+"/mitmproxy")
		}
	}
	fmt.Fprintln(tw, strings.Join(append(head, "goal"), "\t")+"\t")
	for _, w := range rows {
		cells := []string{w.Title, w.Unit}
		for _, name := range targets {
			cells = append(cells, valueCell(w, name))
		}
		for _, name := range compared {
			if withDirect {
				cells = append(cells, ratioCell(w.VsDirect, name, w.Latency))
			}
			if withSquid {
				cells = append(cells, squidCell(w, name))
			}
			if withRelay && slices.Contains(r.Served, name) {
				cells = append(cells, ratioCell(w.VsRelay, name, false))
			}
			if withMicrosocks && slices.Contains(r.Served, name) {
				cells = append(cells, compareCell(w, name, targetMicrosocks))
			}
			if withTunnel {
				cells = append(cells, ratioCell(w.VsTunnel, name, w.Latency))
			}
			if withMitmproxy {
				cells = append(cells, ratioCell(w.VsMitmproxy, name, false))
			}
		}
		cells = append(cells, r.goalCell(w, compared))
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	_ = tw.Flush()
}

func valueCell(w row, name string) string {
	v, ok := w.Values[name]
	if !ok {
		return "-"
	}
	s := fmt.Sprintf("%.0f", v)
	if n := w.Errors[name]; n > 0 {
		s += fmt.Sprintf(" (%d err)", n)
	}
	return s
}

// ratioCell formats a ratio, or (added) the microseconds added.
func ratioCell(m map[string]float64, name string, added bool) string {
	v, ok := m[name]
	switch {
	case !ok:
		return "-"
	case added:
		return fmt.Sprintf("%+.0fµs", v)
	}
	return fmt.Sprintf("%.2f×", v)
}

// compareCell is the ratio of name against base.
func compareCell(w row, name, base string) string {
	v, ok := w.compare(name, base)
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2f×", v)
}

// squidCell is the ratio against Squid and, where Squid is a latency
// row's baseline, the microseconds added to it.
func squidCell(w row, name string) string {
	s := ratioCell(w.VsSquid, name, false)
	if _, ok := w.OverSquid[name]; ok {
		s += " " + ratioCell(w.OverSquid, name, true)
	}
	if v, ok := w.AddedVsSquid[name]; ok {
		s += fmt.Sprintf(" (adds %.2f×)", v)
	}
	return s
}

// goalCell says, for each compared target the goal applies to, whether
// it is met (n/a when none can be judged).
func (r *report) goalCell(w row, compared []string) string {
	if w.Goal == "" {
		return ""
	}
	var parts []string
	for _, name := range compared {
		if _, measured := w.Values[name]; !measured || w.goal.only != "" && name != w.goal.only {
			continue
		}
		if w.goal.served && !slices.Contains(r.Served, name) {
			continue
		}
		met, ok := w.GoalMet[name]
		switch {
		case !ok:
			parts = append(parts, "n/a")
		case met:
			parts = append(parts, "met")
		default:
			parts = append(parts, "MISSED")
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "n/a")
	}
	return w.Goal + ": " + strings.Join(parts, "/")
}

func (r *report) writeNotes(out io.Writer) {
	fmt.Fprintf(out, "\n%s, %d CPUs (GOMAXPROCS %d); options %v\n", r.Go, r.CPUs, r.GOMAXPROCS, r.Options)
	fmt.Fprintln(out, "ratios: median over the interleaved rounds of the per-round ratio; latency: X/direct is the time a new CONNECT adds, X/squid the ratio of latencies and (adds) of the times added over direct (via Squid: the time added to Squid's)")
	if len(r.Served) > 0 {
		fmt.Fprintf(out, "%s: `regate serve` as its own process (the goals judge it), the embedded default policy with %v allow-list patterns, decision log on; %s: the same regate in this tool's process, a diagnostic (it shares the scheduler with the clients and the upstream)\n",
			strings.Join(r.Served, ", "), r.Options["patterns"], targetRegate)
	}
	if r.Squid != "" {
		fmt.Fprintf(out, "squid %s, access_log on: %d lines\n", r.Squid, r.SquidAccessLogLines)
	} else if r.SquidSkipped != "" {
		fmt.Fprintln(out, r.SquidSkipped)
	}
	if r.ParentSkipped != "" {
		fmt.Fprintln(out, r.ParentSkipped)
	}
	if r.ParentBinary != "" {
		pin := "pinned in regate too (-parent-pin): no local lookup"
		if !r.ParentPinned {
			pin = "not pinned in regate (-parent-pin=false): looked up locally first"
		}
		fmt.Fprintf(out, "via Squid rows: the client to Squid directly, and to regate with --upstream-proxy to the same Squid (X%s: `%s serve`; %s%s: in-process), asked for the name, which Squid resolves; %s\n", chainedSuffix, r.ParentBinary, targetRegate, chainedSuffix, pin)
	}
	if l := r.ParentLookup; l != nil {
		fmt.Fprintf(out, "a local lookup of %s, as regate makes before asking the parent for a name: p50 %.0fµs, p99 %.0fµs (n=%d; %s)\n", l.Name, l.P50, l.P99, l.N, l.Result)
	}
	if r.IsolateSkipped != "" {
		fmt.Fprintln(out, r.IsolateSkipped)
	}
	if r.IsolateBinary != "" {
		fmt.Fprintf(out, "sandbox rows: this tool's client inside `%s run --isolate` and, as direct, outside any sandbox\n", r.IsolateBinary)
	}
	r.writeInspectNotes(out)
	for _, name := range r.Targets {
		st, ok := r.DecisionLog[name]
		if !ok {
			continue
		}
		fmt.Fprintf(out, "%s decision log: %s: %d lines", name, st.Sink, st.Lines)
		if st.Decisions >= 0 {
			fmt.Fprintf(out, ", %.0f decisions, %.0f dropped", st.Decisions, st.Dropped)
		}
		fmt.Fprintln(out)
	}
	for _, w := range r.Rows {
		if m := r.FilesPerConn[w.ID]; len(m) > 0 {
			fmt.Fprintf(out, "%s: open files per connection: %s\n", w.ID, mapLine(m, r.Targets, "%.2f"))
		}
		if len(w.UpstreamConnsPerOp) > 0 {
			fmt.Fprintf(out, "%s: upstream connections opened per request: %s\n", w.ID, mapLine(w.UpstreamConnsPerOp, r.Targets, "%.3g"))
		}
		format := "%.2f×"
		if w.Latency {
			format = "%.2f× latency"
		}
		if len(w.VsIsolateProxy) > 0 {
			fmt.Fprintf(out, "%s against the proxy path from the same sandbox: %s\n", w.ID, mapLine(w.VsIsolateProxy, r.Targets, format))
		}
		if len(w.VsRelay) > 0 {
			fmt.Fprintf(out, "%s against the minimal splice relay: %s\n", w.ID, mapLine(w.VsRelay, r.Targets, format))
		}
	}
	for _, w := range r.Rows {
		for name, e := range w.FirstErrors {
			fmt.Fprintf(out, "%s, %s: %d errors, first: %s\n", w.ID, name, w.Errors[name], e)
		}
	}
}

func mapLine(m map[string]float64, targets []string, format string) string {
	var parts []string
	for _, name := range targets {
		if v, ok := m[name]; ok {
			parts = append(parts, name+" "+fmt.Sprintf(format, v))
		}
	}
	return strings.Join(parts, ", ")
}

// writeInspectNotes says what the inspect rows compare.
func (r *report) writeInspectNotes(out io.Writer) {
	if r.InspectBinary != "" {
		fmt.Fprintf(out, "HTTPS rows: the same TLS upstream through regate (X = `%s serve`, or %s), X%s a plain CONNECT tunnel to %s (the client's TLS ends at the upstream), X%s the same regate inspecting %s (it ends at regate, which verifies the upstream with --upstream-ca); HTTP/1.1 clients, a full TLS handshake per new connection; latency: X%s/tunnel is the time inspection adds\n",
			r.InspectBinary, targetRegate, tunnelSuffix, tunnelName, inspectSuffix, inspectName, inspectSuffix)
	}
	for _, w := range r.Rows {
		for name, v := range w.VsInspect {
			base, _ := inspectedOf(name)
			cmp := fmt.Sprintf("%s/%s = %.3f×", name, base, v)
			if w.Latency {
				cmp = fmt.Sprintf("%s adds %.0fµs to %s", name, v, base)
			}
			fmt.Fprintf(out, "secrets swap, %s: %s (an attempt holding a secret bound to %s sends its placeholder in Authorization; regate swaps it and scrubs the answer)\n",
				w.Title, cmp, secretName)
		}
	}
	if r.Mitmproxy != "" {
		fmt.Fprintf(out, "mitmproxy %s (mitmdump, its own CA, the upstream's CA trusted): CONNECT to the upstream's address, %s in the client's TLS\n", r.Mitmproxy, inspectName)
	} else if r.MitmproxySkipped != "" {
		fmt.Fprintln(out, r.MitmproxySkipped)
	}
}
