package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/regate/regate/internal/testenv"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/regate/regate/internal/isolate"
)

// tinyArgs run the first proxy workloads at sizes that finish in a few
// seconds, with a policy of 100 patterns (a race-built regate, cold and
// busy, must decide within its 100 ms decision timeout).
var tinyArgs = []string{"-d", "100ms", "-warmup", "20ms", "-rounds", "2", "-c", "2", "-bulk", "1", "-isolate-bulk", "1", "-n", "5", "-patterns", "100",
	"-w", "keepalive,newconn,connect-up,connect-down,latency"}

// wantRows are the report's rows, in order.
var wantRows = []string{"keepalive", "newconn", "connect-up", "connect-down", "connect-p50", "connect-p99"}

// TestMain lets the test binary be the transparent workload's inner
// client, as the command is.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == innerArg {
		if err := serveInner(os.Args[2:], os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	code := m.Run()
	if builtRegate.path != "" {
		_ = os.RemoveAll(filepath.Dir(builtRegate.path))
	}
	os.Exit(code)
}

// TestRunJSON runs the tool as `go run ./test/load -json` would, against
// direct, `regate serve` (built once for the package's tests), the relay
// and the in-process regate, and checks that every row is there, that
// every request succeeded, that every decision was logged and that the
// goals judge the served binary, never the in-process diagnostic. No
// timing is asserted.
func TestRunJSON(t *testing.T) {
	bin := buildRegate(t)
	var stdout, stderr bytes.Buffer
	args := append([]string{"-json", "-squid", "off", "-binary", bin}, tinyArgs...)
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	var rep report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("decoding the JSON line %q: %v", stdout.String(), err)
	}
	checkReport(t, &rep, []string{targetDirect, targetRegateBin, targetRelay, targetRegate})
	if rep.SquidSkipped == "" {
		t.Error("squid neither measured nor reported skipped")
	}
	if strings.Join(rep.Served, ",") != targetRegateBin {
		t.Errorf("served targets %v, want %s", rep.Served, targetRegateBin)
	}
	st := rep.DecisionLog[targetRegate]
	if st.Lines == 0 || float64(st.Lines) != st.Decisions || st.Dropped != 0 {
		t.Errorf("decision log %+v: want one line per decision, none dropped", st)
	}
	if st := rep.DecisionLog[targetRegateBin]; st.Lines == 0 {
		t.Errorf("regate serve logged no decision: %+v", st)
	}
	for _, w := range rep.Rows {
		if _, judged := w.GoalMet[targetRegate]; judged {
			t.Errorf("%s: goal %q judges the in-process diagnostic", w.ID, w.Goal)
		}
		if _, judged := w.GoalMet[targetRegateBin]; strings.HasPrefix(w.ID, "connect-") && !strings.HasSuffix(w.ID, "-p50") && !strings.HasSuffix(w.ID, "-p99") && !judged {
			t.Errorf("%s: goal %q does not judge the served binary against the relay", w.ID, w.Goal)
		}
	}
	for _, w := range wantRows {
		if !strings.Contains(stderr.String(), titleOf(&rep, w)) {
			t.Errorf("table lacks %q:\n%s", w, stderr.String())
		}
	}
}

// TestBaselines runs every workload of the proxies side by side at a
// small scale with a freshly built regate: against Squid, the relay,
// wrk (its keep-alive GETs against direct, `regate serve` and Squid),
// microsocks (SOCKS5 new connections and bulk), a new CONNECT with a TLS
// handshake, the resident size per idle connection and per idle tunnel
// of `regate serve` and of Squid, and startup (timed by the tool itself,
// as where hyperfine is not installed). Every row must be there with
// its figures, without errors, the served binary's ratios against its
// baselines given and judged by the row's goal; squid, wrk and
// microsocks are required (CI installs them). The in-process diagnostic
// is left out (TestRunJSON has it). No timing or size is asserted.
func TestBaselines(t *testing.T) {
	if testing.Short() {
		testenv.Skip(t, "-short: this test starts squid")
	}
	for _, tool := range []string{"wrk", "microsocks"} {
		if _, err := exec.LookPath(tool); err != nil {
			testenv.Skip(t, "%s not installed", tool)
		}
	}
	if _, err := findSquid("auto"); err != nil {
		testenv.Skip(t, "%v", err)
	}
	bin := buildRegate(t)
	args := append([]string{"-binary", bin}, tinyArgs...)
	args = append(args, "-inprocess=false", "-wrk-c", "2", "-mem-n", "20", "-mem-settle", "0s", "-startup-runs", "1", "-startup-patterns", "100",
		"-hyperfine", "off", "-w", "keepalive,newconn,wrk,connect-up,connect-down,latency,connect-tls,socks-newconn,socks-up,socks-down,memory,startup")
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := measure(context.Background(), o, tLog{t})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Squid == "" || rep.SquidAccessLogLines == 0 {
		t.Errorf("squid version %q, access log lines %d", rep.Squid, rep.SquidAccessLogLines)
	}
	if rep.Wrk == "" || rep.Microsocks == "" || rep.StartupRunHow == "" {
		t.Errorf("wrk %q, microsocks %q, startup timed by %q", rep.Wrk, rep.Microsocks, rep.StartupRunHow)
	}
	get := []string{targetDirect, targetRegateBin, targetSquid}
	tunnels := []string{targetDirect, targetRegateBin, targetSquid, targetRelay}
	socks := []string{targetDirect, targetRegateBin, targetRelay, targetMicrosocks}
	footprint := []string{targetRegateBin, targetSquid}
	want := []struct {
		id       string
		measured []string
		base     string // the served binary's baseline
	}{
		{"keepalive", get, targetSquid},
		{"newconn", get, targetSquid},
		{"wrk-keepalive", []string{targetDirect, targetRegateBin, targetSquid}, targetSquid},
		{"connect-up", tunnels, targetRelay},
		{"connect-down", tunnels, targetRelay},
		{"connect-p50", tunnels, targetSquid},
		{"connect-p99", tunnels, targetSquid},
		{"connect-tls-p50", tunnels, targetSquid},
		{"connect-tls-p99", tunnels, targetSquid},
		{"socks-newconn", slices.DeleteFunc(slices.Clone(socks), func(n string) bool { return n == targetRelay }), targetMicrosocks},
		{"socks-up", socks, targetRelay},
		{"socks-down", socks, targetRelay},
		{"memory-keepalive", footprint, targetSquid},
		{"memory-tunnel", footprint, targetSquid},
		{"startup-run", []string{targetRegateBin}, ""},
		{"startup-serve", []string{targetRegateBin}, ""},
	}
	var ids, wantIDs []string
	for _, w := range want {
		wantIDs = append(wantIDs, w.id)
	}
	for i, w := range rep.Rows {
		ids = append(ids, w.ID)
		if i >= len(want) || want[i].id != w.ID {
			continue
		}
		for _, name := range want[i].measured {
			v, ok := w.Values[name]
			memory := strings.HasPrefix(w.ID, "memory-") // it may shrink between two readings
			if !ok || !memory && v <= 0 || w.Errors[name] > 0 {
				t.Errorf("%s, %s: value %v (%v), %d errors, first: %s", w.ID, name, v, ok, w.Errors[name], w.FirstErrors[name])
			}
		}
		if len(w.Values) != len(want[i].measured) {
			t.Errorf("%s: values %v, want only %v", w.ID, w.Values, want[i].measured)
		}
		if base := want[i].base; base != "" {
			if _, ok := w.compare(targetRegateBin, base); !ok {
				t.Errorf("%s: no serve/%s ratio", w.ID, base)
			}
		}
		// An added latency is judged where Squid's is above direct's (a
		// handful of samples on a busy machine may have it below).
		undefined := w.goal.ofAdded && w.Values[targetSquid] <= w.Values[targetDirect]
		if _, judged := w.GoalMet[targetRegateBin]; !judged && !undefined {
			t.Errorf("%s: goal %q does not judge the served binary", w.ID, w.Goal)
		}
	}
	if strings.Join(ids, ",") != strings.Join(wantIDs, ",") {
		t.Errorf("rows %v, want %v", ids, wantIDs)
	}
}

// builtRegate is the regate binary the package's tests share, built once.
var builtRegate struct {
	once sync.Once
	path string
	err  error
}

// tLog writes the tool's progress lines to the test's log.
type tLog struct{ t *testing.T }

func (l tLog) Write(b []byte) (int, error) {
	l.t.Helper()
	l.t.Log(time.Now().Format("15:04:05.000"), strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// buildRegate builds the regate binary into a temporary directory, once
// for the package's tests.
func buildRegate(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		testenv.Skip(t, "-short: this test builds regate")
	}
	b := &builtRegate
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "regate-load-test-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "regate")
		args := []string{"build", "-o", b.path}
		if raceEnabled {
			args = append(args, "-race") // shares the build cache with test/e2e
		}
		out, err := exec.Command("go", append(args, "github.com/regate/regate/cmd/regate")...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("building regate: %w\n%s", err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// TestTransparent runs the transparent workload with a freshly built
// regate: the tool's client inside `regate run --isolate`, through the TUN
// link and the proxy variable, and outside any sandbox. Every figure must
// be there, non-zero and without errors; no timing is asserted.
func TestTransparent(t *testing.T) {
	if err := isolate.Available(); err != nil {
		testenv.Skip(t, "%v", err)
	}
	bin := buildRegate(t)
	o, err := parseFlags(append(append([]string{"-squid", "off", "-relay=false", "-binary", bin}, tinyArgs...), "-w", workloadTransparent), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := measure(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) == 0 {
		testenv.Skip(t, "--isolate unavailable here: %s", rep.IsolateSkipped)
	}
	sandbox := []string{targetDirect, targetIsolateProxy, targetTransparent}
	if strings.Join(rep.Targets, ",") != strings.Join(sandbox, ",") {
		t.Fatalf("targets %v, want %v (%s)", rep.Targets, sandbox, rep.IsolateSkipped)
	}
	var ids []string
	for _, w := range rep.Rows {
		ids = append(ids, w.ID)
		measured := sandbox
		if strings.HasPrefix(w.ID, "transparent-lookup") {
			measured = []string{targetTransparent} // only the transparent path looks the name up
		}
		for _, name := range measured {
			if w.Values[name] <= 0 || w.Errors[name] > 0 {
				t.Errorf("%s, %s: value %v, %d errors, first: %s", w.ID, name, w.Values[name], w.Errors[name], w.FirstErrors[name])
			}
			if _, ok := w.VsDirect[name]; !ok && name != targetDirect && len(measured) > 1 {
				t.Errorf("%s, %s: no ratio against direct", w.ID, name)
			}
		}
	}
	want := "transparent-up,transparent-down,transparent-p50,transparent-p99,transparent-lookup-p50,transparent-lookup-p99"
	if strings.Join(ids, ",") != want {
		t.Errorf("rows %v, want %s", ids, want)
	}
	if st := rep.DecisionLog[targetTransparent]; st.Lines == 0 {
		t.Errorf("the sandbox's regate logged no decision: %+v", st)
	}
}

// TestParent runs the parent workload with a freshly built regate chained
// to Squid, with the name pinned in regate and not: every figure there,
// non-zero and without errors, with its ratio against Squid; no timing is
// asserted. Without Squid it fails under CI and skips elsewhere.
func TestParent(t *testing.T) {
	if _, err := findSquid("auto"); err != nil {
		testenv.Skip(t, "the parent workload needs squid: %v", err)
	}
	bin := buildRegate(t)
	for _, pin := range []bool{true, false} {
		t.Run(fmt.Sprintf("pin=%v", pin), func(t *testing.T) {
			args := append([]string{"-binary", bin, "-parent-pin=" + fmt.Sprint(pin)}, tinyArgs...)
			o, err := parseFlags(append(args, "-w", workloadParent), io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			rep, err := measure(context.Background(), o, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			checkParent(t, rep)
			if l := rep.ParentLookup; pin != (l == nil) || l != nil && (l.N == 0 || l.P50 <= 0) {
				t.Errorf("pin %v: local lookup %+v", pin, l)
			}
		})
	}
}

// checkParent checks the parent workload's targets, rows and figures.
func checkParent(t *testing.T, rep *report) {
	t.Helper()
	chained := []string{targetRegateBin + chainedSuffix, targetRegate + chainedSuffix}
	targets := append([]string{targetSquid}, chained...)
	if strings.Join(rep.Targets, ",") != strings.Join(targets, ",") {
		t.Fatalf("targets %v, want %v (%s)", rep.Targets, targets, rep.ParentSkipped)
	}
	var ids []string
	for _, w := range rep.Rows {
		ids = append(ids, w.ID)
		for _, name := range targets {
			if w.Values[name] <= 0 || w.Errors[name] > 0 {
				t.Errorf("%s, %s: value %v, %d errors, first: %s", w.ID, name, w.Values[name], w.Errors[name], w.FirstErrors[name])
			}
		}
		for _, name := range chained {
			if _, ok := w.VsSquid[name]; !ok {
				t.Errorf("%s, %s: no ratio against squid", w.ID, name)
			}
			if _, ok := w.OverSquid[name]; w.Latency != ok {
				t.Errorf("%s, %s: latency row %v, µs over squid given %v", w.ID, name, w.Latency, ok)
			}
		}
	}
	if want := "parent-keepalive,parent-connect-p50,parent-connect-p99"; strings.Join(ids, ",") != want {
		t.Errorf("rows %v, want %s", ids, want)
	}
	for _, name := range chained {
		if st := rep.DecisionLog[name]; st.Lines == 0 {
			t.Errorf("%s logged no decision: %+v", name, st)
		}
	}
	if rep.SquidAccessLogLines == 0 {
		t.Error("squid logged no request")
	}
}

// TestInspect runs the inspect workload with a freshly built regate:
// `regate serve` and regate in-process, each as a plain tunnel and
// inspecting, to the run's TLS upstream, and mitmproxy when it is
// installed (elsewhere the report says why it is not measured; the test
// does not need it). Every figure must be there, non-zero and without
// errors, an inspected one with its ratio against the plain tunnel; no
// timing is asserted.
func TestInspect(t *testing.T) {
	bin := buildRegate(t)
	args := append([]string{"-binary", bin, "-inspect-bulk", "1"}, tinyArgs...)
	o, err := parseFlags(append(args, "-w", workloadInspect), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := measure(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	inspected := []string{targetRegateBin + inspectSuffix, targetRegate + inspectSuffix}
	// The served regate also sends a secret (X:secret, against X:inspect).
	regates := []string{targetRegateBin + tunnelSuffix, inspected[0], targetRegateBin + secretSuffix, targetRegate + tunnelSuffix, inspected[1]}
	targets := regates
	if rep.Mitmproxy != "" {
		targets = append(slices.Clone(regates), targetMitmproxy)
	} else if rep.MitmproxySkipped == "" {
		t.Error("mitmproxy neither measured nor reported skipped")
	}
	if strings.Join(rep.Targets, ",") != strings.Join(targets, ",") {
		t.Fatalf("targets %v, want %v", rep.Targets, targets)
	}
	var ids []string
	for _, w := range rep.Rows {
		ids = append(ids, w.ID)
		measured := regates
		if w.ID == "inspect-keepalive" {
			measured = targets
		}
		for _, name := range measured {
			if w.Values[name] <= 0 || w.Errors[name] > 0 {
				t.Errorf("%s, %s: value %v, %d errors, first: %s", w.ID, name, w.Values[name], w.Errors[name], w.FirstErrors[name])
			}
		}
		for _, name := range inspected {
			if _, ok := w.VsTunnel[name]; !ok {
				t.Errorf("%s, %s: no ratio against the plain tunnel", w.ID, name)
			}
			if _, ok := w.VsMitmproxy[name]; ok != (w.ID == "inspect-keepalive" && rep.Mitmproxy != "") {
				t.Errorf("%s, %s: ratio against mitmproxy given %v", w.ID, name, ok)
			}
		}
	}
	if want := "inspect-keepalive,inspect-down,inspect-p50,inspect-p99"; strings.Join(ids, ",") != want {
		t.Errorf("rows %v, want %s", ids, want)
	}
	for _, name := range inspected {
		if st := rep.DecisionLog[name]; st.Lines == 0 {
			t.Errorf("%s logged no decision: %+v", name, st)
		}
	}
}

func TestFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown workload", []string{"-w", "keepalive,nope"}, `unknown workload "nope"`},
		{"zero clients", []string{"-c", "0"}, "-c 0"},
		{"zero sandbox bulk", []string{"-isolate-bulk", "0"}, "-isolate-bulk 0"},
		{"zero inspect bulk", []string{"-inspect-bulk", "0"}, "-inspect-bulk 0"},
		{"stray argument", []string{"extra"}, "unexpected arguments"},
		{"reserved binary name", []string{"-binary", "squid=/bin/true"}, "reserved"},
		{"binary name twice", []string{"-binary", "a=/x", "-binary", "a=/y"}, "used twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseFlags(tc.args, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func checkReport(t *testing.T, rep *report, targets []string) {
	t.Helper()
	if strings.Join(rep.Targets, ",") != strings.Join(targets, ",") {
		t.Fatalf("targets %v, want %v", rep.Targets, targets)
	}
	var ids []string
	for _, w := range rep.Rows {
		ids = append(ids, w.ID)
		for _, name := range targets {
			if name == targetRelay && !strings.HasPrefix(w.ID, "connect-") {
				if _, ok := w.Values[name]; ok {
					t.Errorf("%s: the CONNECT-only relay has a value", w.ID)
				}
				continue
			}
			if w.Values[name] <= 0 {
				t.Errorf("%s, %s: value %v", w.ID, name, w.Values[name])
			}
			if n := w.Errors[name]; n > 0 {
				t.Errorf("%s, %s: %d errors, first: %s", w.ID, name, n, w.FirstErrors[name])
			}
			if _, ok := w.VsDirect[name]; !ok && name != targetDirect {
				t.Errorf("%s, %s: no ratio against direct", w.ID, name)
			}
		}
	}
	if strings.Join(ids, ",") != strings.Join(wantRows, ",") {
		t.Fatalf("rows %v, want %v", ids, wantRows)
	}
}

func titleOf(rep *report, id string) string {
	for _, w := range rep.Rows {
		if w.ID == id {
			return w.Title
		}
	}
	return "(missing " + id + ")"
}

// benchEnv starts the upstream and the in-process regate for a benchmark.
func benchEnv(b *testing.B) (*upstream, []target) {
	b.Helper()
	u, err := startUpstream(128)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(u.close)
	r, err := startInProcess(context.Background(), b.TempDir(), policyPatterns(1000))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if _, err := r.stop(); err != nil {
			b.Error(err)
		}
	})
	return u, []target{{name: targetDirect}, {name: targetRegate, proxyAddr: r.addr}}
}

// BenchmarkGET measures GETs on keep-alive and on new connections, 16
// concurrent clients, directly and through regate. Profile the proxy with
// -cpuprofile and -bench 'GET/.*/regate'.
func BenchmarkGET(b *testing.B) {
	u, targets := benchEnv(b)
	for _, keep := range []bool{true, false} {
		name := map[bool]string{true: "keepalive", false: "newconn"}[keep]
		for _, t := range targets {
			b.Run(name+"/"+t.name, func(b *testing.B) {
				req := t.getRequest(u.httpPort, !keep)
				b.SetParallelism(8)
				b.RunParallel(func(pb *testing.PB) {
					var conn net.Conn
					var br *bufio.Reader
					defer func() {
						if conn != nil {
							_ = conn.Close()
						}
					}()
					for pb.Next() {
						if conn == nil {
							var err error
							if conn, err = t.dialHTTP(u.httpPort); err != nil {
								b.Error(err)
								return
							}
							br = bufio.NewReader(conn)
						}
						again, err := roundTrip(conn, br, req)
						if err != nil {
							b.Error(err)
							return
						}
						if !again {
							_ = conn.Close()
							conn = nil
						}
					}
				})
			})
		}
	}
}

// BenchmarkConnect measures a new tunnel's setup (to the first echoed
// byte) and bulk upload and download through it, directly and through
// regate.
func BenchmarkConnect(b *testing.B) {
	u, targets := benchEnv(b)
	for _, t := range targets {
		b.Run("setup/"+t.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := connectSetup(t, u); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	const size = 64 << 20
	for _, dir := range []struct {
		name string
		run  func(target, *upstream, int64) sample
	}{{"upload", upload}, {"download", download}} {
		for _, t := range targets {
			b.Run(dir.name+"/"+t.name, func(b *testing.B) {
				b.SetBytes(size)
				for b.Loop() {
					if s := dir.run(t, u, size); s.errs > 0 {
						b.Fatal(s.firstErr)
					}
				}
			})
		}
	}
}

// BenchmarkInspect measures HTTPS through the in-process regate: keep-alive
// GETs (8 per core, each on its own TLS connection), a new request
// (CONNECT, the client's handshake, one GET) and a download, through its
// plain tunnel and its inspection. Profile inspection with -cpuprofile
// and -bench 'Inspect/.*/inspect'.
func BenchmarkInspect(b *testing.B) {
	u, err := startUpstream(128)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(u.close)
	dir := b.TempDir()
	certs, err := newInspectCerts(dir)
	if err == nil {
		u.httpsPort, err = u.startTLS(certs.upstreamLeaf)
	}
	if err != nil {
		b.Fatal(err)
	}
	r, err := startInProcessInspecting(context.Background(), dir, certs)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if _, err := r.stop(); err != nil {
			b.Error(err)
		}
	})
	targets := certs.regatePaths(targetRegate, r.addr, u)
	for _, t := range targets {
		b.Run("keepalive/"+t.name, func(b *testing.B) {
			req := t.tlsRequest(u, "/")
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				conn, err := t.dialTLS()
				if err != nil {
					b.Error(err)
					return
				}
				defer conn.Close()
				br := bufio.NewReader(conn)
				for pb.Next() {
					if _, err := roundTrip(conn, br, req); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
	for _, t := range targets {
		b.Run("request/"+t.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := httpsSetup(t, u); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	const size = 64 << 20
	for _, t := range targets {
		b.Run("download/"+t.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if s := httpsDownload(t, u, size); s.errs > 0 {
					b.Fatal(s.firstErr)
				}
			}
		})
	}
}
