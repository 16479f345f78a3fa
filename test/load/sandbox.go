package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/regate/regate/internal/isolate"
)

// addSandbox starts, for the transparent workload, `regate run --isolate`
// with this tool as the inner client (serveInner) and adds the sandbox's
// two paths as targets; the direct baseline is the same client started
// outside any sandbox, so that every path has a client process of its own
// and the ratios measure the path only. The upstream stays on the host's
// 127.0.0.1, pinned to upstreamName and exempt from the SSRF guard, as
// for the other regate targets. When isolation is unavailable, rep says
// why and the workload is skipped.
func (e *env) addSandbox(o options, dir string, rep *report, progress io.Writer) error {
	skip := func(why string) error {
		rep.IsolateSkipped = "transparent workload skipped: " + why
		fmt.Fprintln(progress, rep.IsolateSkipped)
		return nil
	}
	if err := isolate.Available(); err != nil {
		return skip(err.Error())
	}
	bin, err := regateBinary(o, dir)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this executable: %w", err)
	}
	client := []string{self, innerArg, strconv.Itoa(e.u.echoPort), strconv.Itoa(e.u.sinkPort), strconv.Itoa(e.u.sourcePort)}
	logPath := filepath.Join(dir, "isolate-decisions.jsonl")
	sb, hello, err := startInner(dir, "isolate", append([]string{bin, "run", "--isolate", "--quiet", "--log-level", "warn",
		"--allow", upstreamName, "--resolve", upstreamName + ":127.0.0.1", "--allow-cidr", "127.0.0.0/8",
		"--decision-log", logPath, "--"}, client...))
	if err != nil {
		return skip(err.Error())
	}
	rep.IsolateBinary = bin
	e.stops = append(e.stops, func(rep *report) {
		sb.stop()
		rep.DecisionLog[targetTransparent] = logStats{Sink: "JSON lines to " + logPath + " (both sandbox paths)",
			Decisions: -1, Dropped: -1, Lines: countLines(logPath)}
	})
	var skipped []string
	for _, p := range []struct{ name, missing string }{{targetIsolateProxy, hello.Proxy}, {targetTransparent, hello.Transparent}} {
		if p.missing != "" {
			skipped = append(skipped, p.name+" skipped: "+p.missing)
			continue
		}
		e.sandbox = append(e.sandbox, target{name: p.name, inner: sb})
	}
	if len(skipped) > 0 {
		rep.IsolateSkipped = strings.Join(skipped, "; ")
		fmt.Fprintln(progress, rep.IsolateSkipped)
	}
	if len(e.sandbox) == 0 {
		return errors.New("the sandbox has neither path: " + rep.IsolateSkipped)
	}
	direct, _, err := startInner(dir, "direct-client", client)
	if err != nil {
		return err
	}
	e.stops = append(e.stops, func(*report) { direct.stop() })
	e.sandbox = append([]target{{name: targetDirect, inner: direct}}, e.sandbox...)
	return nil
}

// regateBinary is the regate binary the sandbox and the parent workload
// run: the first -binary, else one built from this module into dir (once
// per run).
func regateBinary(o options, dir string) (string, error) {
	if len(o.binaries) > 0 {
		return o.binaries[0].path, nil
	}
	bin := filepath.Join(dir, "regate")
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	out, err := exec.Command("go", "build", "-o", bin, "github.com/regate/regate/cmd/regate").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building regate (or pass -binary): %w\n%s", err, out)
	}
	return bin, nil
}

// setupBatch is how many setups an inner client runs back to back per
// request: between requests it idles on its stdin, and a setup after
// that wait (regate's too) would also measure waking up.
const setupBatch = 10

// runSandbox is the transparent workload: bulk both ways and the latency
// of a new connection, through the sandbox's two paths and directly, in
// interleaved rounds as the other workloads.
func runSandbox(ctx context.Context, o options, e *env, rep *report, progress io.Writer) error {
	size := int64(o.isolateMiB) << 20
	for _, w := range []struct{ id, op, title string }{
		{"transparent-up", opUpload, fmt.Sprintf("sandbox upload %d MiB", o.isolateMiB)},
		{"transparent-down", opDownload, fmt.Sprintf("sandbox download %d MiB", o.isolateMiB)},
	} {
		samples, err := interleave(ctx, e.sandbox, o.rounds, func(t target) sample {
			return t.inner.call(innerRequest{Target: t.name, Op: w.op, Size: size}).sample()
		})
		if err != nil {
			return err
		}
		rep.addRate(w.id, w.title, "MB/s", samples, megabytesPerSecond, goalTransparentBulk, progress)
	}
	lat, err := setupLatencies(ctx, e.sandbox, o.samples, batched(opSetup))
	if err != nil {
		return err
	}
	rep.addLatency("transparent", "sandbox: new connection to first echo", lat, o.samples, goalTransparentSetup, goal{})
	for _, t := range e.sandbox {
		if t.name != targetTransparent {
			continue
		}
		lat, err := setupLatencies(ctx, []target{t}, o.samples, batched(opLookup))
		if err != nil {
			return err
		}
		rep.addLatency("transparent-lookup", "sandbox: name lookup (A+AAAA) of a transparent dial", lat, o.samples, goal{}, goal{})
	}
	return nil
}

// batched times op one at a time, asking a target's client for setupBatch
// at once.
func batched(op string) func(target) (time.Duration, error) {
	results := map[string]*batch{}
	return func(t target) (time.Duration, error) {
		b := results[t.name]
		if b == nil {
			b = &batch{}
			results[t.name] = b
		}
		if len(b.d) == 0 && len(b.errs) == 0 {
			b.fill(t.inner.call(innerRequest{Target: t.name, Op: op, Count: setupBatch}))
		}
		return b.next()
	}
}

// batch is what is left of a client's answer.
type batch struct {
	d    []time.Duration
	errs []error
}

func (b *batch) fill(a innerAnswer) {
	for _, ns := range a.Setups {
		b.d = append(b.d, time.Duration(ns))
	}
	n := a.Errs
	if n == 0 && a.Err != "" { // the call itself failed
		n = 1
	}
	for range n {
		b.errs = append(b.errs, errors.New(a.Err))
	}
}

func (b *batch) next() (time.Duration, error) {
	if len(b.d) == 0 && len(b.errs) == 0 {
		return 0, errors.New("the inner client answered no result")
	}
	if len(b.errs) > 0 {
		err := b.errs[0]
		b.errs = b.errs[1:]
		return 0, err
	}
	d := b.d[0]
	b.d = b.d[1:]
	return d, nil
}

// inner is a process running this tool as the inner client: `regate run
// --isolate -- load -inner …`, or the client alone. Requests go one at a
// time, a JSON line each way.
type inner struct {
	cmd    *exec.Cmd
	in     *os.File // the client's stdin
	out    *os.File // its stdout
	enc    *json.Encoder
	dec    *json.Decoder
	waited chan struct{}
	stderr string
}

// startInner starts argv with its stderr in dir/name.stderr and reads
// the client's hello.
func startInner(dir, name string, argv []string) (*inner, innerHello, error) {
	var hello innerHello
	in := &inner{cmd: exec.Command(argv[0], argv[1:]...), stderr: filepath.Join(dir, name+".stderr"), waited: make(chan struct{})}
	in.cmd.Env = cleanEnv()
	if err := in.start(); err != nil {
		return nil, hello, err
	}
	_ = in.out.SetReadDeadline(time.Now().Add(30 * time.Second))
	if err := in.dec.Decode(&hello); err != nil {
		in.kill()
		err = fmt.Errorf("%s did not start (%s): %w", name, in.cmd.ProcessState, err)
		if msg := tail(in.stderr, 5); msg != "" {
			err = fmt.Errorf("%w; %s", err, msg)
		}
		return nil, hello, err
	}
	return in, hello, nil
}

// start starts the command on pipes of its own (not exec's copying
// goroutines), so that its stdout can have deadlines and reads end with
// the process.
func (in *inner) start() error {
	stderr, err := os.Create(in.stderr)
	if err != nil {
		return err
	}
	defer stderr.Close()
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		return err
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		_, _ = stdinR.Close(), stdinW.Close()
		return err
	}
	in.cmd.Stdin, in.cmd.Stdout, in.cmd.Stderr = stdinR, stdoutW, stderr
	err = in.cmd.Start()
	_, _ = stdinR.Close(), stdoutW.Close()
	if err != nil {
		_, _ = stdinW.Close(), stdoutR.Close()
		return fmt.Errorf("starting %s: %w", in.cmd.Path, err)
	}
	in.in, in.out = stdinW, stdoutR
	in.enc, in.dec = json.NewEncoder(stdinW), json.NewDecoder(stdoutR)
	go func() { _ = in.cmd.Wait(); close(in.waited) }()
	return nil
}

// call runs one op in the client.
func (in *inner) call(req innerRequest) innerAnswer {
	_ = in.out.SetReadDeadline(time.Now().Add(2 * ioTimeout))
	if err := in.enc.Encode(req); err != nil {
		return innerAnswer{Err: "sending to the inner client: " + err.Error()}
	}
	var a innerAnswer
	if err := in.dec.Decode(&a); err != nil {
		return innerAnswer{Err: "reading the inner client's answer: " + err.Error()}
	}
	return a
}

// stop closes the client's stdin (it exits, and a sandbox's regate with
// it) and waits.
func (in *inner) stop() {
	_ = in.in.Close()
	select {
	case <-in.waited:
	case <-time.After(10 * time.Second):
		_ = in.cmd.Process.Kill()
		<-in.waited
	}
	_ = in.out.Close()
}

func (in *inner) kill() {
	_ = in.cmd.Process.Kill() // a sandbox dies with its regate
	<-in.waited
	_, _ = in.in.Close(), in.out.Close()
}
