package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/regate/regate/internal/parent"
)

// chainedSuffix names a regate target chained to the run's Squid.
const chainedSuffix = "→squid"

// chainedPolicy are the policy flags of a `regate serve` chained to Squid
// (the parent flag is added per run): upstreamName allowed, loopback
// exempt from the SSRF guard (Squid is on it) and, with pin, the name
// pinned to 127.0.0.1 as for every other regate target. In the default
// upstream_connect: name, regate asks Squid for the name either way, and
// Squid resolves it from its hosts_file; the pin only spares regate's
// local lookup (planForParent), which without it is made on every CONNECT
// and every plain request, and fails: a DNS round trip of this machine's
// resolver, not the cost of the hop.
func chainedPolicy(pin bool) []string {
	if pin {
		return slices.Clone(pinnedPolicy)
	}
	return []string{"--allow", upstreamName, "--allow-cidr", "127.0.0.0/8"}
}

// addParent adds, for the parent workload, the client → Squid baseline
// and regate chained to that same Squid (--upstream-proxy): `regate
// serve` from the first -binary, else built (the headline), and regate
// in-process. Without Squid the workload is skipped and rep says why.
func (e *env) addParent(ctx context.Context, o options, dir string, rep *report, progress io.Writer) error {
	if e.squid == nil {
		rep.ParentSkipped = "parent workload skipped: " + rep.SquidSkipped
		fmt.Fprintln(progress, rep.ParentSkipped)
		return nil
	}
	parentURL := "http://" + e.squid.addr
	bin, err := regateBinary(o, dir)
	if err != nil {
		return err
	}
	name := targetRegateBin
	if len(o.binaries) > 0 {
		name = o.binaries[0].name
	}
	b, err := startBinary(bin, name+"-parent", dir, false, append(chainedPolicy(o.parentPin), "--upstream-proxy", parentURL))
	if err != nil {
		return err
	}
	e.stops = append(e.stops, func(rep *report) { rep.DecisionLog[name+chainedSuffix] = b.stop() })
	chain, err := parent.NewChain(parentURL, nil, parent.Options{DialTimeout: ioTimeout})
	if err != nil {
		return err
	}
	r, err := startInProcessChained(ctx, dir, targetRegate+"-parent", chain, o.parentPin)
	if err != nil {
		return err
	}
	e.stops = append(e.stops, func(rep *report) {
		st, err := r.stop()
		rep.DecisionLog[targetRegate+chainedSuffix] = st
		if err != nil {
			fmt.Fprintln(progress, "stopping in-process regate chained to squid:", err)
		}
	})
	rep.ParentBinary, rep.ParentPinned = bin, o.parentPin
	e.parent = []target{
		{name: targetSquid, proxyAddr: e.squid.addr},
		{name: name + chainedSuffix, proxyAddr: b.addr},
		{name: targetRegate + chainedSuffix, proxyAddr: r.addr},
	}
	return nil
}

// runParent is the parent workload: keep-alive GETs and the latency of a
// new CONNECT, through Squid and through regate chained to it, in
// interleaved rounds as the other workloads; then the local lookup of the
// name that regate then makes before asking the parent (unpinned only).
func runParent(ctx context.Context, o options, e *env, rep *report, progress io.Writer) error {
	for _, t := range e.parent {
		keepAlive(t, e.u, o.clients, o.warmup)
	}
	samples, err := interleave(ctx, e.parent, o.rounds, func(t target) sample {
		return keepAlive(t, e.u, o.clients, o.duration)
	})
	if err != nil {
		return err
	}
	title := fmt.Sprintf("via Squid: keep-alive GET, %d clients", o.clients)
	rep.addRate("parent-keepalive", title, "req/s", samples, perSecond, goalParentGET, progress)
	lat, err := setupLatencies(ctx, e.parent, o.samples, func(t target) (time.Duration, error) { return connectSetup(t, e.u) })
	if err != nil {
		return err
	}
	rep.addLatency("parent-connect", "via Squid: new CONNECT to first echo", lat, o.samples, goal{}, goal{})
	if !o.parentPin {
		rep.ParentLookup = localLookup(ctx, min(o.samples, 100))
	}
	return nil
}

// lookupStats are the times of n local lookups of upstreamName, as regate
// makes one (planForParent) before asking the parent for a name, on every
// CONNECT and every plain request; Result is how the last one ended.
type lookupStats struct {
	Name   string  `json:"name"`
	N      int     `json:"n"`
	P50    float64 `json:"p50_us"`
	P99    float64 `json:"p99_us"`
	Result string  `json:"result"`
}

// localLookup looks upstreamName up n times with the default resolver and
// regate's 2 s bound; a failure is the expected result (the name is
// Squid's to resolve), timed like an answer.
func localLookup(ctx context.Context, n int) *lookupStats {
	st := &lookupStats{Name: upstreamName, N: n}
	var d []time.Duration
	for range n {
		lctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		addrs, err := net.DefaultResolver.LookupNetIP(lctx, "ip", upstreamName)
		d = append(d, time.Since(start))
		cancel()
		st.Result = fmt.Sprint(addrs)
		if err != nil {
			st.Result = err.Error()
		}
	}
	slices.Sort(d)
	st.P50, st.P99 = round1(percentile(d, 0.5)), round1(percentile(d, 0.99))
	return st
}
