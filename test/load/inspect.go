package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/tlsca"
	"github.com/regate/regate/proxy"
)

// The inspect workload's names, both on the TLS upstream's certificate
// and pinned to 127.0.0.1: regate inspects inspectName and passes
// tunnelName through untouched, so that one regate gives both paths to
// the same upstream.
const (
	inspectName = "inspect.load.test"
	tunnelName  = "tunnel.load.test"
)

// A regate target of the inspect workload is named after the regate and
// its path: X:inspect, and X:tunnel, its baseline. mitmproxy inspects
// too.
const (
	inspectSuffix   = ":inspect"
	tunnelSuffix    = ":tunnel"
	targetMitmproxy = "mitmproxy"
)

// tunnelOf is the plain-tunnel baseline of an inspected regate target.
func tunnelOf(name string) (string, bool) {
	base, ok := strings.CutSuffix(name, inspectSuffix)
	return base + tunnelSuffix, ok
}

// inspectPolicy are the flags of a `regate serve` that inspects
// inspectName and passes tunnelName through, both pinned to 127.0.0.1 and
// exempt from the SSRF guard; it verifies the upstream with upstreamCA
// and inspects with the CA in caCert and caKey.
func inspectPolicy(upstreamCA, caCert, caKey string) []string {
	var args []string
	for _, name := range []string{inspectName, tunnelName} {
		args = append(args, "--allow", name, "--resolve", name+":127.0.0.1")
	}
	return append(args, "--inspect", inspectName, "--allow-cidr", "127.0.0.0/8",
		"--upstream-ca", upstreamCA, "--inspect-ca", caCert, "--inspect-key", caKey)
}

// inspectCerts are the inspect workload's CAs, the TLS upstream's and
// the one regate inspects with, and their files.
type inspectCerts struct {
	upstream, inspect *certAuthority
	upstreamFile      string // --upstream-ca
	caCert, caKey     string // --inspect-ca, --inspect-key
	upstreamLeaf      tls.Certificate
}

// newInspectCerts generates the CAs and the upstream's leaf, and writes
// the files regate reads into dir.
func newInspectCerts(dir string) (*inspectCerts, error) {
	var c inspectCerts
	var err error
	if c.upstream, err = newCertAuthority("regate load upstream CA"); err != nil {
		return nil, err
	}
	if c.upstreamLeaf, err = c.upstream.leaf(inspectName, tunnelName, secretName); err != nil {
		return nil, err
	}
	if c.upstreamFile, _, err = c.upstream.write(dir, "upstream-ca", false); err != nil {
		return nil, err
	}
	if c.inspect, err = newCertAuthority("regate load inspection CA"); err != nil {
		return nil, err
	}
	if c.caCert, c.caKey, err = c.inspect.write(dir, "inspect-ca", true); err != nil {
		return nil, err
	}
	return &c, nil
}

// regatePaths are the two targets of a regate at addr named name: its
// plain tunnel to tunnelName, the client trusting the upstream's CA, and
// its inspection of inspectName, the client trusting regate's.
func (c *inspectCerts) regatePaths(name, addr string, u *upstream) []target {
	port := strconv.Itoa(u.httpsPort)
	return []target{
		{name: name + tunnelSuffix, proxyAddr: addr,
			tls: &tlsPath{authority: net.JoinHostPort(tunnelName, port), config: clientTLS(tunnelName, c.upstream.pool())}},
		{name: name + inspectSuffix, proxyAddr: addr,
			tls: &tlsPath{authority: net.JoinHostPort(inspectName, port), config: clientTLS(inspectName, c.inspect.pool())}},
	}
}

// addInspect adds, for the inspect workload, a TLS upstream with its own
// CA, and the targets: `regate serve` from the first -binary, else built
// (the headline), and regate in-process, each as a plain tunnel and
// inspecting (with a CA of this run's, as --inspect-ca), and mitmdump
// when it is installed (rep says why not otherwise).
func (e *env) addInspect(ctx context.Context, o options, dir string, rep *report, progress io.Writer) error {
	certs, err := newInspectCerts(dir)
	if err == nil {
		e.u.httpsPort, err = e.u.startTLS(certs.upstreamLeaf)
	}
	if err != nil {
		return err
	}
	bin, err := regateBinary(o, dir)
	if err != nil {
		return err
	}
	name := targetRegateBin
	if len(o.binaries) > 0 {
		name = o.binaries[0].name
	}
	secret, sock, err := secretPolicy(dir)
	if err != nil {
		return err
	}
	b, err := startBinary(bin, name+"-inspect", dir, false, append(inspectPolicy(certs.upstreamFile, certs.caCert, certs.caKey), secret...))
	if err != nil {
		return err
	}
	e.stops = append(e.stops, func(rep *report) { rep.DecisionLog[name+inspectSuffix] = b.stop() })
	holder, err := certs.grantSecret(ctx, name, b.addr, sock, e.u)
	if err != nil {
		return err
	}
	r, err := startInProcessInspecting(ctx, dir, certs)
	if err != nil {
		return err
	}
	e.stops = append(e.stops, func(rep *report) {
		st, err := r.stop()
		rep.DecisionLog[targetRegate+inspectSuffix] = st
		if err != nil {
			fmt.Fprintln(progress, "stopping in-process regate inspecting:", err)
		}
	})
	rep.InspectBinary = bin
	e.inspect = append(append(certs.regatePaths(name, b.addr, e.u), holder), certs.regatePaths(targetRegate, r.addr, e.u)...)
	return e.addMitmproxy(o, dir, certs.upstreamFile, rep, progress)
}

// startInProcessInspecting starts regate in-process as inspectPolicy
// configures `regate serve`.
func startInProcessInspecting(ctx context.Context, dir string, certs *inspectCerts) (*inProcess, error) {
	ca, err := tlsca.Load(certs.caCert, certs.caKey)
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	roots.AddCert(certs.upstream.cert)
	loopback := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	return startInProcessWith(ctx, dir, "regate-inspect",
		engine.Config{
			Allow: []string{inspectName, tunnelName},
			Data:  map[string]any{"regate": map[string]any{"inspect": []string{inspectName}}},
		},
		proxy.Config{
			AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			Hosts:      map[string][]netip.Addr{inspectName: loopback, tunnelName: loopback},
			Inspect:    &proxy.Inspection{CA: ca, UpstreamRoots: roots},
		})
}

// addMitmproxy starts mitmdump as the last inspect target; where it is
// missing or off, rep says why. Its clients CONNECT to the upstream's
// address and ask for inspectName in their TLS: mitmproxy has no way to
// pin a name, and it takes the upstream's name from the client's SNI.
func (e *env) addMitmproxy(o options, dir, upstreamCA string, rep *report, progress io.Writer) error {
	path, err := findMitmdump(o.mitmproxy)
	if err != nil {
		rep.MitmproxySkipped = "mitmproxy row skipped: " + err.Error()
		fmt.Fprintln(progress, rep.MitmproxySkipped)
		return nil
	}
	m, err := startMitmdump(path, dir, upstreamCA)
	if err != nil {
		return err
	}
	e.stops = append(e.stops, func(*report) { m.stop() })
	rep.Mitmproxy = m.version
	e.inspect = append(e.inspect, target{name: targetMitmproxy, proxyAddr: m.addr,
		tls: &tlsPath{authority: net.JoinHostPort("127.0.0.1", strconv.Itoa(e.u.httpsPort)), config: clientTLS(inspectName, m.roots)}})
	return nil
}

// runInspect is the inspect workload, in interleaved rounds as the
// others: keep-alive HTTPS GETs through every target (inspected against
// mitmproxy), a bulk download and the latency of a new request through
// regate's tunnels and its inspection (inspected against the same
// regate's plain tunnel).
func runInspect(ctx context.Context, o options, e *env, rep *report, progress io.Writer) error {
	for _, t := range e.inspect {
		httpsKeepAlive(t, e.u, o.clients, o.warmup)
	}
	samples, err := interleave(ctx, e.inspect, o.rounds, func(t target) sample {
		return httpsKeepAlive(t, e.u, o.clients, o.duration)
	})
	if err != nil {
		return err
	}
	rep.addRate("inspect-keepalive", fmt.Sprintf("HTTPS keep-alive GET, %d clients", o.clients), "req/s", samples, perSecond, goalInspectGET, progress)
	var regates []target
	for _, t := range e.inspect {
		if t.name != targetMitmproxy {
			regates = append(regates, t)
		}
	}
	size := int64(o.inspectMiB) << 20
	samples, err = interleave(ctx, regates, o.rounds, func(t target) sample { return httpsDownload(t, e.u, size) })
	if err != nil {
		return err
	}
	rep.addRate("inspect-down", fmt.Sprintf("HTTPS download %d MiB", o.inspectMiB), "MB/s", samples, megabytesPerSecond, goalInspectBulk, progress)
	lat, err := setupLatencies(ctx, regates, o.samples, func(t target) (time.Duration, error) { return httpsSetup(t, e.u) })
	if err != nil {
		return err
	}
	rep.addLatency("inspect", "new CONNECT + TLS + GET to response", lat, o.samples, goalInspectSetup, goal{})
	return nil
}
