package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/parent"
	"github.com/regate/regate/policies"
	"github.com/regate/regate/proxy"
)

// logStats says what regate's decision log did during the run.
type logStats struct {
	Sink      string  `json:"sink"`
	Decisions float64 `json:"decisions"`
	Lines     int     `json:"lines"`
	Dropped   float64 `json:"dropped"`
}

// inProcess is regate's proxy and engine in this process, as `regate serve`
// wires them: the embedded default policy allowing upstreamName, the name
// pinned to 127.0.0.1 (or, chained to a parent, optionally not pinned:
// the parent resolves it), 127.0.0.0/8 exempt from the SSRF guard, metrics
// registered, and every decision logged as a JSON line to a file (the
// in-memory ring of the admin API is always on too).
type inProcess struct {
	e         *engine.Engine
	p         *proxy.Proxy
	reg       *prometheus.Registry
	logFile   *os.File
	addr      string // HTTP proxy
	socksAddr string // SOCKS5
	done      chan error
}

// startInProcess starts regate in-process allowing the patterns of allow
// (upstreamName among them), the name pinned.
func startInProcess(ctx context.Context, dir string, allow []string) (*inProcess, error) {
	pcfg := proxy.Config{
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Hosts:      map[string][]netip.Addr{upstreamName: {netip.MustParseAddr("127.0.0.1")}},
	}
	return startInProcessWith(ctx, dir, "in-process", engine.Config{Allow: allow}, pcfg)
}

// startInProcessChained starts regate in-process with its decision log in
// dir/stem-decisions.jsonl; a non-nil chain is its parent proxy; pin pins
// upstreamName.
func startInProcessChained(ctx context.Context, dir, stem string, chain *parent.Chain, pin bool) (*inProcess, error) {
	pcfg := proxy.Config{
		AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Hosts:      map[string][]netip.Addr{upstreamName: {netip.MustParseAddr("127.0.0.1")}},
		Parents:    chain,
	}
	if !pin {
		pcfg.Hosts = nil
	}
	return startInProcessWith(ctx, dir, stem, engine.Config{Allow: []string{upstreamName}}, pcfg)
}

// startInProcessWith starts regate in-process on the embedded default
// policy with ecfg's patterns and data and pcfg's routing, anonymous
// clients accepted, metrics registered and its decision log in
// dir/stem-decisions.jsonl.
func startInProcessWith(ctx context.Context, dir, stem string, ecfg engine.Config, pcfg proxy.Config) (*inProcess, error) {
	f, err := os.OpenFile(filepath.Join(dir, stem+"-decisions.jsonl"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening decision log: %w", err)
	}
	r := &inProcess{reg: prometheus.NewRegistry(), logFile: f, done: make(chan error, 2)}
	ecfg.Default, ecfg.DecisionLog, ecfg.Registerer = policies.FS, f, r.reg
	r.e, err = engine.New(ecfg)
	if err == nil {
		err = r.e.Start(ctx)
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting engine: %w", err)
	}
	pcfg.AllowAnonymous, pcfg.DecisionLogger, pcfg.Registerer = true, r.e, r.reg
	r.p, err = proxy.New(pcfg, r.e)
	var ln, sln net.Listener
	if err == nil {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err == nil {
		if sln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			_ = ln.Close()
		}
	}
	if err != nil {
		r.e.Stop(ctx)
		_ = f.Close()
		return nil, fmt.Errorf("starting proxy: %w", err)
	}
	r.addr, r.socksAddr = ln.Addr().String(), sln.Addr().String()
	go func() { r.done <- r.p.ServeHTTPProxy(ln) }()
	go func() { r.done <- r.p.ServeSOCKS(sln) }()
	return r, nil
}

// stop shuts the proxy down, flushes the decision log and reports on it.
func (r *inProcess) stop() (logStats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.p.Shutdown(ctx)
	for range 2 {
		if serr := <-r.done; serr != nil {
			err = errors.Join(err, serr)
		}
	}
	r.e.Flush(ctx)
	r.e.Stop(ctx)
	st := logStats{
		Sink:      "JSON lines to " + r.logFile.Name() + " (+ in-memory ring)",
		Decisions: counterSum(r.reg, "regate_decisions_total"),
		Dropped:   counterSum(r.reg, "regate_decision_log_dropped_total"),
	}
	_ = r.logFile.Close()
	st.Lines = countLines(r.logFile.Name())
	return st, err
}

// counterSum adds every series of the named counter.
func counterSum(g prometheus.Gatherer, name string) float64 {
	mfs, err := g.Gather()
	if err != nil {
		return -1
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

func countLines(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	return bytes.Count(b, []byte("\n"))
}

// pinnedPolicy are the policy flags of `regate serve` as the in-process
// regate has them: upstreamName allowed and pinned to 127.0.0.1, loopback
// exempt from the SSRF guard.
var pinnedPolicy = []string{"--allow", upstreamName, "--resolve", upstreamName + ":127.0.0.1", "--allow-cidr", "127.0.0.0/8"}

// regateServe is `regate serve` started from a built binary, with its
// policy flags and a decision-log file.
type regateServe struct {
	cmd       *exec.Cmd
	addr      string // HTTP proxy
	socksAddr string // SOCKS5, "" when off
	logPath   string
	waited    chan struct{}
}

// startBinary starts `path serve` with the policy flags, a SOCKS5
// listener too with socks, its decision log in dir/stem-decisions.jsonl
// and its output in dir/stem.stderr.
func startBinary(path, stem, dir string, socks bool, policy []string) (*regateServe, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	b := &regateServe{addr: "127.0.0.1:" + strconv.Itoa(port), logPath: filepath.Join(dir, stem+"-decisions.jsonl"), waited: make(chan struct{})}
	socksFlag := "off"
	if socks {
		if port, err = freePort(); err != nil {
			return nil, err
		}
		b.socksAddr = "127.0.0.1:" + strconv.Itoa(port)
		socksFlag = b.socksAddr
	}
	stderr, err := os.Create(filepath.Join(dir, stem+".stderr"))
	if err != nil {
		return nil, err
	}
	defer stderr.Close()
	args := append([]string{"serve", "--http", b.addr, "--socks", socksFlag, "--admin", "off"}, policy...)
	b.cmd = exec.Command(path, append(args, "--decision-log", b.logPath, "--watch=false", "--log-level", "warn")...)
	b.cmd.Stdout, b.cmd.Stderr = stderr, stderr
	b.cmd.Env = cleanEnv()
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", path, err)
	}
	go func() { _ = b.cmd.Wait(); close(b.waited) }()
	if err := waitAccepting(b.addr, b.waited, 20*time.Second); err != nil {
		b.kill()
		return nil, fmt.Errorf("%s serve: %w; %s", path, err, tail(stderr.Name(), 5))
	}
	return b, nil
}

// stop sends SIGTERM (regate drains and flushes its log) and waits.
func (b *regateServe) stop() logStats {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.waited:
	case <-time.After(10 * time.Second):
		b.kill()
	}
	return logStats{Sink: "JSON lines to " + b.logPath, Decisions: -1, Dropped: -1, Lines: countLines(b.logPath)}
}

func (b *regateServe) kill() {
	_ = b.cmd.Process.Kill()
	<-b.waited
}

// freePort picks an unused loopback port for a server that cannot be
// handed a listener.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitAccepting polls addr until it accepts, the process exits (exited
// is closed) or the timeout passes.
func waitAccepting(addr string, exited <-chan struct{}, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before accepting connections")
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not accepting on %s after %v", addr, timeout)
		}
	}
}

// cleanEnv is this process's environment without proxy variables, so that
// the servers it starts behave the same on every machine.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasSuffix(strings.ToLower(k), "_proxy") || strings.HasPrefix(k, "REGATE_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
