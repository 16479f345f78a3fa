// Command load measures what users deploy, `regate serve` as its own
// process (built from this module into a temporary directory, or each
// -binary), against a direct baseline, Squid, a minimal splice relay and
// microsocks, and regate in this tool's process as a diagnostic column.
// The served regate and the in-process one run the embedded default
// policy with -patterns allow-list patterns (1,000) and their decision
// log on (JSON lines to a file); Squid runs with its access_log on.
// Everything runs on 127.0.0.1; targets are measured in interleaved
// rounds, and every figure is also given as a ratio against the
// baselines of the same run; the goals (issue 14) judge the served
// binary only. The workloads:
//
//   - keepalive, newconn: GET requests/s, on keep-alive connections and on
//     a new connection each, from this tool's clients;
//   - wrk: keep-alive GETs from an external C client, wrk, with a Lua
//     script that sends absolute-form requests with a matching Host;
//   - connect-up, connect-down: CONNECT bulk throughput;
//   - latency: a new CONNECT to the first echoed byte; connect-tls: a new
//     CONNECT with a TLS handshake to a local TLS server, to the first
//     byte of its answer;
//   - socks-newconn, socks-up, socks-down: SOCKS5 new connections/s and
//     bulk, against microsocks (and the relay for bulk);
//   - memory: the resident size a connection adds, at -mem-n (10,000)
//     idle keep-alive client connections and as many idle tunnels (fewer
//     where the open-files limit cannot hold them), for `regate serve` and
//     Squid, each started afresh;
//   - startup: `regate run -- true` wall time (hyperfine where it is
//     installed) and `regate serve` ready (health 200) with
//     -startup-patterns (10,000) patterns.
//
// The parent workload measures regate chained to Squid as its parent
// proxy (--upstream-proxy): keep-alive GETs and the latency of a new
// CONNECT through `regate serve` (the first -binary, else built) and
// regate in-process, both in front of the run's Squid, against the client
// going to that Squid directly.
//
// The transparent workload measures `regate run --isolate` (Linux): this
// tool, re-executed as a client inside the sandbox (-inner), moves bulk
// data and opens new connections through the TUN link (a plain dial of the
// name) and through the proxy variable (CONNECT), against the same client
// outside any sandbox.
//
// The inspect workload measures HTTPS inspection against a local TLS
// upstream: keep-alive HTTPS GETs, a bulk download and the latency of a
// new request (CONNECT, the client's TLS handshake, one GET) through
// regate inspecting a name, against the same regate's plain tunnel to
// another name of the same upstream, and keep-alive GETs through
// mitmproxy (mitmdump) when it is installed. regate is `regate serve`
// (the first -binary, else built) and in-process.
//
//	go run ./test/load [-d 500ms] [-rounds 5] [-c 16] [-bulk 256] [-n 500]
//	                   [-isolate-bulk 128] [-inspect-bulk 64] [-patterns 1000]
//	                   [-w keepalive,…,memory,startup,parent,transparent,inspect]
//	                   [-binary [NAME=]bin/regate]... [-inprocess=false]
//	                   [-squid|-wrk|-microsocks|-hyperfine|-mitmproxy auto|off|PATH]
//	                   [-wrk-c 32] [-wrk-d 1s] [-mem-n 10000] [-startup-runs 20]
//	                   [-startup-patterns 10000] [-parent-pin=false] [-json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	var err error
	if len(os.Args) > 1 && os.Args[1] == innerArg {
		err = serveInner(os.Args[2:], os.Stdin, os.Stdout)
	} else {
		err = run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	}
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// options are the command-line settings.
type options struct {
	duration        time.Duration // one target, one round of a GET workload
	warmup          time.Duration // one target, before the GET rounds
	rounds          int           // interleaved rounds per workload
	clients         int           // concurrent GET clients
	bulkMiB         int           // bytes per CONNECT transfer, MiB
	isolateMiB      int           // bytes per sandbox transfer, MiB
	inspectMiB      int           // bytes per inspected download, MiB
	samples         int           // CONNECT setup samples per target
	bodySize        int           // GET response body
	squid           string        // auto, off or a path
	mitmproxy       string        // auto, off or a path of mitmdump
	binaries        binaries      // regate binaries to also measure
	jsonOut         bool
	cpuProfile      string
	keep            bool          // keep the temporary directory
	relay           bool          // measure the reference CONNECT relay
	inProcess       bool          // also measure regate in this process (a diagnostic)
	patterns        int           // allow-list patterns of the proxy workloads' regate
	wrk             string        // auto, off or a path of wrk
	wrkConns        int           // wrk's connections
	wrkDuration     time.Duration // one wrk round per target
	microsocks      string        // auto, off or a path of microsocks
	memConns        int           // idle connections of the memory workload
	memSettle       time.Duration // how long a proxy is left alone before its size is read
	hyperfine       string        // auto, off or a path of hyperfine
	startupRuns     int           // runs of each startup figure
	startupPatterns int           // allow-list patterns of the served startup
	parentPin       bool          // pin the upstream name in regate chained to Squid
	workloads       map[string]bool
}

// workloadTransparent measures the sandbox of `regate run --isolate`;
// workloadParent, regate chained to Squid as its parent proxy;
// workloadInspect, HTTPS inspection.
const (
	workloadTransparent = "transparent"
	workloadParent      = "parent"
	workloadInspect     = "inspect"
	workloadMemory      = "memory"
	workloadStartup     = "startup"
)

// workloadNames are the -w values, in run order.
var workloadNames = []string{"keepalive", "newconn", "wrk", "connect-up", "connect-down", "latency", "connect-tls",
	"socks-newconn", "socks-up", "socks-down", workloadMemory, workloadStartup, workloadParent, workloadTransparent, workloadInspect}

// proxyWorkloads reports whether a workload of the proxies side by side
// (all but memory, startup, parent, transparent and inspect, which start
// their own) is to run.
func (o options) proxyWorkloads() bool {
	for w := range o.workloads {
		switch w {
		case workloadMemory, workloadStartup, workloadTransparent, workloadParent, workloadInspect:
		default:
			return true
		}
	}
	return false
}

// socksWorkloads reports whether a SOCKS5 workload is to run.
func (o options) socksWorkloads() bool {
	return o.workloads["socks-newconn"] || o.workloads["socks-up"] || o.workloads["socks-down"]
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.DurationVar(&o.duration, "d", 500*time.Millisecond, "duration of one GET round per target")
	fs.DurationVar(&o.warmup, "warmup", 200*time.Millisecond, "GET warm-up per target before the rounds")
	fs.IntVar(&o.rounds, "rounds", 5, "interleaved rounds per workload")
	fs.IntVar(&o.clients, "c", 16, "concurrent GET clients")
	fs.IntVar(&o.bulkMiB, "bulk", 256, "MiB per CONNECT bulk transfer (each direction, each round)")
	fs.IntVar(&o.isolateMiB, "isolate-bulk", 128, "MiB per sandbox bulk transfer (transparent workload)")
	fs.IntVar(&o.inspectMiB, "inspect-bulk", 64, "MiB per HTTPS download (inspect workload)")
	fs.IntVar(&o.samples, "n", 500, "new CONNECT setups measured per target")
	fs.IntVar(&o.bodySize, "body", 128, "GET response body bytes")
	fs.StringVar(&o.squid, "squid", "auto", "squid binary: auto (PATH, /usr/sbin), off, or a path")
	fs.StringVar(&o.mitmproxy, "mitmproxy", "auto", "mitmdump binary, the inspect workload's baseline: auto (PATH), off, or a path")
	fs.Var(&o.binaries, "binary", "measure `regate serve` from this built binary, [NAME=]PATH (repeatable, to compare builds; default: built from this module into a temporary directory); the first also runs the transparent workload's sandbox and is the parent and inspect workloads' regate")
	fs.BoolVar(&o.jsonOut, "json", false, "print one JSON line on stdout (the table goes to stderr)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of this process (in-process regate, clients, upstream)")
	fs.BoolVar(&o.inProcess, "inprocess", true, "also measure regate in this tool's process (a diagnostic column: it shares the scheduler with the clients and the upstream)")
	fs.IntVar(&o.patterns, "patterns", 1000, "allow-list patterns of the proxy workloads' regate (the embedded default policy; the upstream's name among them)")
	fs.StringVar(&o.wrk, "wrk", "auto", "wrk binary, the external client of the wrk workload: auto (PATH), off, or a path")
	fs.IntVar(&o.wrkConns, "wrk-c", 32, "wrk's connections (2 threads)")
	fs.DurationVar(&o.wrkDuration, "wrk-d", time.Second, "one wrk round per target (whole seconds)")
	fs.StringVar(&o.microsocks, "microsocks", "auto", "microsocks binary, the SOCKS5 workloads' baseline: auto (PATH), off, or a path")
	fs.IntVar(&o.memConns, "mem-n", 10000, "idle connections (and tunnels) of the memory workload")
	fs.DurationVar(&o.memSettle, "mem-settle", time.Second, "memory workload: how long a proxy is left alone before its resident size is read")
	fs.StringVar(&o.hyperfine, "hyperfine", "auto", "hyperfine binary, which times `regate run -- true`: auto (PATH; else this tool times it), off, or a path")
	fs.IntVar(&o.startupRuns, "startup-runs", 20, "runs of each startup figure")
	fs.IntVar(&o.startupPatterns, "startup-patterns", 10000, "allow-list patterns of the served binary whose readiness the startup workload times")
	fs.BoolVar(&o.relay, "relay", true, "also measure a minimal splice relay on the CONNECT rows (the cost of the extra hop)")
	fs.BoolVar(&o.parentPin, "parent-pin", true, "parent workload: pin the upstream name in regate chained to Squid, as Squid pins it; false: regate looks it up locally on every request first (it fails; Squid resolves it)")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (logs, squid.conf)")
	only := fs.String("w", strings.Join(workloadNames, ","), "workloads to run, comma-separated")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var errs []error
	o.workloads = map[string]bool{}
	for w := range strings.SplitSeq(*only, ",") {
		if !slices.Contains(workloadNames, w) {
			errs = append(errs, fmt.Errorf("-w: unknown workload %q (want %s)", w, strings.Join(workloadNames, ",")))
		}
		o.workloads[w] = true
	}
	for name, v := range map[string]int{"-rounds": o.rounds, "-c": o.clients, "-bulk": o.bulkMiB, "-isolate-bulk": o.isolateMiB, "-inspect-bulk": o.inspectMiB, "-n": o.samples, "-patterns": o.patterns,
		"-wrk-c": o.wrkConns, "-mem-n": o.memConns, "-startup-runs": o.startupRuns, "-startup-patterns": o.startupPatterns} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s %d: want at least 1", name, v))
		}
	}
	if o.duration <= 0 || o.warmup < 0 || o.bodySize < 0 || o.wrkDuration <= 0 || o.memSettle < 0 {
		errs = append(errs, errors.New("-d and -wrk-d must be positive, -warmup, -mem-settle and -body not negative"))
	}
	return o, errors.Join(errs...)
}

// binarySpec is a regate binary to measure and its column name.
type binarySpec struct{ name, path string }

// binaries is the repeatable -binary flag.
type binaries []binarySpec

func (b *binaries) String() string { return fmt.Sprint(*b) }

// names are the binaries' column names; with none, the one the tool
// builds.
func (b binaries) names() []string {
	if len(b) == 0 {
		return []string{targetRegateBin}
	}
	var out []string
	for _, x := range b {
		out = append(out, x.name)
	}
	return out
}

func (b *binaries) Set(v string) error {
	name, path, ok := strings.Cut(v, "=")
	if !ok {
		name, path = targetRegateBin, v
		if len(*b) > 0 {
			name += strconv.Itoa(len(*b) + 1)
		}
	}
	for _, x := range *b {
		if x.name == name {
			return fmt.Errorf("binary name %q used twice", name)
		}
	}
	switch name {
	case "", targetDirect, targetRegate, targetSquid, targetRelay, targetMitmproxy, targetMicrosocks:
		return fmt.Errorf("binary name %q is reserved", name)
	}
	*b = append(*b, binarySpec{name: name, path: path})
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep, err := measure(ctx, o, stderr)
	if err != nil {
		return err
	}
	if o.jsonOut {
		rep.writeTable(stderr)
		return rep.writeJSON(stdout)
	}
	rep.writeTable(stdout)
	return nil
}
