package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"time"
)

// env is what a run measures: the upstream and the targets in table
// order, and how to stop what was started.
type env struct {
	u       *upstream
	squid   *squid // nil when not installed, off or not needed
	targets []target
	socks   []target     // the SOCKS5 workloads' targets
	tlsUp   *tlsUpstream // the connect-tls workload's TLS server
	parent  []target     // Squid and regate chained to it (parent workload only)
	sandbox []target     // the sandbox's paths (transparent workload only)
	inspect []target     // regate's tunnels and inspection, mitmproxy (inspect workload only)
	stops   []func(*report)
}

// measure starts the upstream and every target, runs the workloads and
// stops everything, whatever happened.
func measure(ctx context.Context, o options, progress io.Writer) (*report, error) {
	dir, err := os.MkdirTemp("", "regate-load-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		fmt.Fprintln(progress, "temporary directory:", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	rep := newReport(o)
	e, err := setUp(ctx, o, dir, rep, progress)
	if err == nil && o.relay && o.proxyWorkloads() {
		err = e.addRelay()
	}
	if err == nil && o.inProcess && o.proxyWorkloads() {
		err = e.addInProcess(ctx, o, dir, progress)
	}
	if err == nil && o.socksWorkloads() {
		err = e.addSocks(o, rep, progress)
	}
	if err == nil && o.workloads[workloadParent] {
		err = e.addParent(ctx, o, dir, rep, progress)
	}
	if err == nil && o.workloads[workloadTransparent] {
		err = e.addSandbox(o, dir, rep, progress)
	}
	if err == nil && o.workloads[workloadInspect] {
		err = e.addInspect(ctx, o, dir, rep, progress)
	}
	defer func() {
		for _, stop := range slices.Backward(e.stops) {
			stop(rep)
		}
	}()
	if err != nil {
		return nil, err
	}
	rep.Served = o.binaries.names()
	for _, t := range slices.Concat(e.targets, e.socks, e.parent, e.sandbox, e.inspect) {
		if !slices.Contains(rep.Targets, t.name) { // direct and squid may be in several
			rep.Targets = append(rep.Targets, t.name)
		}
	}
	if err := runWorkloads(ctx, o, e, dir, rep, progress); err != nil {
		return nil, err
	}
	rep.Targets = slices.DeleteFunc(rep.Targets, func(name string) bool { return !rep.measured(name) })
	return rep, nil
}

// setUp starts the upstream and, for the proxy workloads, the served
// regate binaries, and Squid for them or the parent
// workload; e.stops undoes whatever was started, even on error.
func setUp(ctx context.Context, o options, dir string, rep *report, progress io.Writer) (*env, error) {
	e := &env{}
	u, err := startUpstream(o.bodySize)
	if err != nil {
		return e, err
	}
	e.u = u
	e.stops = append(e.stops, func(*report) { u.close() })
	e.targets = append(e.targets, target{name: targetDirect})
	if o.workloads["connect-tls"] {
		if e.tlsUp, err = startTLSUpstream(u); err != nil {
			return e, err
		}
	}
	if o.proxyWorkloads() {
		if err := e.addRegates(o, dir); err != nil {
			return e, err
		}
	}
	if o.proxyWorkloads() || o.workloads[workloadParent] {
		return e, e.addSquid(o, dir, rep, progress)
	}
	return e, nil
}

// addRegates adds `regate serve` from each -binary, else from one built
// from this module, as the first targets after direct: each with the
// allow list of o.patterns patterns and its decision log.
func (e *env) addRegates(o options, dir string) error {
	bins, err := servedBinaries(o, dir)
	if err != nil {
		return err
	}
	cfg, err := servedConfig(dir, o.patterns, 0)
	if err != nil {
		return err
	}
	for _, bin := range bins {
		b, err := startBinary(bin.path, bin.name, dir, true, []string{"--config", cfg})
		if err != nil {
			return err
		}
		e.targets = append(e.targets, target{name: bin.name, proxyAddr: b.addr, socksAddr: b.socksAddr, served: true})
		e.stops = append(e.stops, func(rep *report) { rep.DecisionLog[bin.name] = b.stop() })
	}
	return nil
}

// servedBinaries are the -binary flags, else one binary built from this
// module into dir.
func servedBinaries(o options, dir string) (binaries, error) {
	if len(o.binaries) > 0 {
		return o.binaries, nil
	}
	path, err := regateBinary(o, dir)
	if err != nil {
		return nil, err
	}
	return binaries{{name: targetRegateBin, path: path}}, nil
}

// addInProcess adds regate in this process, a diagnostic: the same
// policy as the served targets, sharing this process's scheduler with
// the clients and the upstream.
func (e *env) addInProcess(ctx context.Context, o options, dir string, progress io.Writer) error {
	r, err := startInProcess(ctx, dir, policyPatterns(o.patterns))
	if err != nil {
		return err
	}
	e.targets = append(e.targets, target{name: targetRegate, proxyAddr: r.addr, socksAddr: r.socksAddr})
	e.stops = append(e.stops, func(rep *report) {
		st, err := r.stop()
		rep.DecisionLog[targetRegate] = st
		if err != nil {
			fmt.Fprintln(progress, "stopping in-process regate:", err)
		}
	})
	return nil
}

// addSquid starts Squid and, for the proxy workloads, adds it as a target;
// where it is missing or off, rep says why.
func (e *env) addSquid(o options, dir string, rep *report, progress io.Writer) error {
	path, err := findSquid(o.squid)
	if err != nil {
		rep.SquidSkipped = err.Error()
		if errors.Is(err, errNoSquid) {
			rep.SquidSkipped = "squid not installed — skipped"
		}
		fmt.Fprintln(progress, rep.SquidSkipped)
		return nil
	}
	ports := []int{e.u.httpPort, e.u.echoPort, e.u.sinkPort, e.u.sourcePort}
	if e.tlsUp != nil {
		ports = append(ports, e.tlsUp.port)
	}
	s, err := startSquid(path, dir, ports)
	if err != nil {
		return err
	}
	rep.Squid = s.version
	e.squid = s
	if o.proxyWorkloads() {
		e.targets = append(e.targets, target{name: targetSquid, proxyAddr: s.addr})
	}
	e.stops = append(e.stops, func(rep *report) { rep.SquidAccessLogLines = s.stop() })
	return nil
}

// addRelay adds the reference CONNECT relay as the last target.
func (e *env) addRelay() error {
	rl, err := startRelay()
	if err != nil {
		return err
	}
	e.targets = append(e.targets, target{name: targetRelay, proxyAddr: rl.addr(), tunnelOnly: true})
	e.stops = append(e.stops, func(*report) { rl.close() })
	return nil
}

// getTargets are the targets that serve plain HTTP.
func (e *env) getTargets() []target {
	var out []target
	for _, t := range e.targets {
		if !t.tunnelOnly {
			out = append(out, t)
		}
	}
	return out
}

// runWorkloads measures every workload on every target.
func runWorkloads(ctx context.Context, o options, e *env, dir string, rep *report, progress io.Writer) error {
	get := []struct {
		id, title string
		run       func(target, *upstream, int, time.Duration) sample
		goal      goal
	}{
		{"keepalive", fmt.Sprintf("keep-alive GET, %d clients", o.clients), keepAlive, goalKeepAlive},
		{"newconn", fmt.Sprintf("new-connection GET, %d clients", o.clients), newConnection, goalNewConn},
	}
	for _, w := range get {
		if !o.workloads[w.id] {
			continue
		}
		for _, t := range e.getTargets() {
			w.run(t, e.u, o.clients, o.warmup)
		}
		samples, err := interleave(ctx, e.getTargets(), o.rounds, func(t target) sample {
			return w.run(t, e.u, o.clients, o.duration)
		})
		if err != nil {
			return err
		}
		rep.addRate(w.id, w.title, "req/s", samples, perSecond, w.goal, progress)
	}
	if o.workloads["wrk"] {
		if err := runWrk(ctx, o, e, dir, rep, progress); err != nil {
			return err
		}
	}
	size := int64(o.bulkMiB) << 20
	bulk := []struct {
		id, title string
		run       func(target, *upstream, int64) sample
	}{
		{"connect-up", fmt.Sprintf("CONNECT upload %d MiB", o.bulkMiB), upload},
		{"connect-down", fmt.Sprintf("CONNECT download %d MiB", o.bulkMiB), download},
	}
	for _, w := range bulk {
		if !o.workloads[w.id] {
			continue
		}
		samples, err := interleave(ctx, e.targets, o.rounds, func(t target) sample { return w.run(t, e.u, size) })
		if err != nil {
			return err
		}
		rep.addRate(w.id, w.title, "MB/s", samples, megabytesPerSecond, goalConnect, progress)
	}
	if o.workloads["latency"] {
		lat, err := setupLatencies(ctx, e.targets, o.samples, func(t target) (time.Duration, error) { return connectSetup(t, e.u) })
		if err != nil {
			return err
		}
		rep.addLatency("connect", "new CONNECT to first echo", lat, o.samples, goalSetupP50, goalSetupP99)
	}
	if e.tlsUp != nil {
		req := e.tlsUp.request()
		lat, err := setupLatencies(ctx, e.targets, o.samples, func(t target) (time.Duration, error) { return e.tlsUp.firstByte(t, req) })
		if err != nil {
			return err
		}
		rep.addLatency("connect-tls", "new CONNECT + TLS handshake to first byte", lat, o.samples, goalTLSSetupP50, goalTLSSetupP99)
	}
	if len(e.socks) > 0 {
		if err := runSocks(ctx, o, e, rep, progress); err != nil {
			return err
		}
	}
	if o.workloads[workloadMemory] {
		if err := runMemory(ctx, o, e, dir, rep, progress); err != nil {
			return err
		}
	}
	if o.workloads[workloadStartup] {
		if err := runStartup(ctx, o, dir, rep, progress); err != nil {
			return err
		}
	}
	if len(e.parent) > 0 {
		if err := runParent(ctx, o, e, rep, progress); err != nil {
			return err
		}
	}
	if len(e.sandbox) > 0 {
		if err := runSandbox(ctx, o, e, rep, progress); err != nil {
			return err
		}
	}
	if len(e.inspect) > 0 {
		return runInspect(ctx, o, e, rep, progress)
	}
	return nil
}

// interleave runs each target once per round, rotating the order every
// round so that drift in the machine's load spreads over all targets.
func interleave(ctx context.Context, targets []target, rounds int, run func(target) sample) (map[string][]sample, error) {
	out := map[string][]sample{}
	for r := range rounds {
		for i := range targets {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			t := targets[(i+r)%len(targets)]
			out[t.name] = append(out[t.name], run(t))
			runtime.GC() // no target pays for another's garbage
		}
	}
	return out, nil
}

// latencies are one target's CONNECT setup times, sorted, and its errors.
type latencies struct {
	d        []time.Duration
	errs     int64
	firstErr error
}

// setupLatencies measures n tunnel setups per target, one at a time, the
// targets taking turns sample by sample, after a short warm-up.
func setupLatencies(ctx context.Context, targets []target, n int, setup func(target) (time.Duration, error)) (map[string]*latencies, error) {
	out := map[string]*latencies{}
	for _, t := range targets {
		out[t.name] = &latencies{}
		for range min(n, 20) {
			_, _ = setup(t)
		}
	}
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for j := range targets {
			t := targets[(i+j)%len(targets)]
			l := out[t.name]
			d, err := setup(t)
			if err != nil {
				l.errs++
				if l.firstErr == nil {
					l.firstErr = err
				}
				continue
			}
			l.d = append(l.d, d)
		}
	}
	for _, l := range out {
		slices.Sort(l.d)
	}
	return out, nil
}

// percentile of sorted durations, in microseconds; 0 when empty.
func percentile(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return 0
	}
	i := min(len(d)-1, int(p*float64(len(d))))
	return float64(d[i]) / float64(time.Microsecond)
}

func perSecond(s sample) float64 {
	if s.dur <= 0 {
		return 0
	}
	return float64(s.ops) / s.dur.Seconds()
}

func megabytesPerSecond(s sample) float64 {
	if s.dur <= 0 {
		return 0
	}
	return float64(s.bytes) / 1e6 / s.dur.Seconds()
}
