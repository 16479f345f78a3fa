package config

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/regate/regate/engine"
)

// validate turns the decoded wire form into a Config, collecting every
// problem. fromFile returns a free-form value (data, hosts, opa) as the file
// wrote it, case preserved; flags may override hosts.
func validate(w *wire, fromFile func(string) any, flags map[string]any) (*Config, error) {
	var p problems
	cfg := &Config{
		Policies:          p.paths("policies", w.Policies),
		Allow:             p.patterns("allow", w.Allow),
		Deny:              p.patterns("deny", w.Deny),
		Inspect:           p.patterns("inspect", w.Inspect),
		Paths:             p.allowPaths(w.AllowPaths),
		AllowCIDRs:        p.cidrs("allow_cidrs", w.AllowCIDRs),
		Hosts:             p.hosts(fromFile("hosts"), flags["hosts"]),
		DecisionTimeout:   p.duration("decision_timeout", w.DecisionTimeout),
		DecisionLog:       w.DecisionLog,
		Watch:             w.Watch,
		Audit:             w.Audit,
		DecisionCache:     w.DecisionCache,
		VerificationKeyID: w.VerificationKeyID,
		OPA:               p.opa(fromFile("opa")),
		LogLevel:          p.level(w.Log.Level),
		LogFormat:         p.format(w.Log.Format),
		ListenAny:         w.ListenAny,
		AllowAnonymous:    w.AllowAnonymous,
		ShutdownTimeout:   p.duration("shutdown_timeout", w.ShutdownTimeout),
		Pprof:             p.pprof(w.Pprof),
		Admin:             p.admin(w.Admin),
		Isolate:           p.isolate(w.Isolate),
		Secrets:           p.secrets(fromFile("secrets")),
		Proxy: ProxyLimits{
			HeaderTimeout:  p.duration("proxy.header_timeout", w.Proxy.HeaderTimeout),
			DialTimeout:    p.duration("proxy.dial_timeout", w.Proxy.DialTimeout),
			IdleTimeout:    p.duration("proxy.idle_timeout", w.Proxy.IdleTimeout),
			TLSPeekTimeout: p.duration("proxy.tls_peek_timeout", w.Proxy.TLSPeekTimeout),
			MaxHeaderBytes: p.count("proxy.max_header_bytes", w.Proxy.MaxHeaderBytes),
			MaxTunnels:     p.count("proxy.max_tunnels", w.Proxy.MaxTunnels),

			MaxTunnelsPerClient: p.count("proxy.max_tunnels_per_client", w.Proxy.MaxTunnelsPerClient),
			MaxAttemptListeners: p.count("proxy.max_attempt_listeners", w.Proxy.MaxAttemptListeners),
			Upstream:            p.upstream(w.Proxy),
		},
	}
	cfg.HTTP = p.listener("http", w.HTTP, w.ListenAny)
	cfg.SOCKS = p.listener("socks", w.SOCKS, w.ListenAny)
	cfg.Inspection = p.inspection(w.Inspection, len(cfg.Inspect) > 0 || len(cfg.Paths) > 0)
	cfg.Data = p.data(fromFile("data"), p.methods("methods", w.Methods), cfg.Inspect, cfg.Paths)
	return cfg, p.err()
}

// problems collects every validation error.
type problems []error

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Errorf(format, args...)) }

func (p *problems) err() error {
	if len(*p) == 0 {
		return nil
	}
	return joined(*p)
}

// joined is errors.Join with one problem per line, without nesting.
type joined []error

func (j joined) Error() string {
	lines := make([]string, len(j))
	for i, e := range j {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

func (j joined) Unwrap() []error { return j }

func (p *problems) paths(key string, paths []string) []string {
	for i, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			p.add("%s[%d]: %q: %w", key, i, path, unwrapPath(err))
			continue
		}
		_ = f.Close()
	}
	return paths
}

// unwrapPath drops the *PathError's own copy of the path.
func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

func (p *problems) patterns(key string, pats []string) []string {
	for i, pat := range pats {
		if err := engine.ValidatePattern(pat); err != nil {
			p.add("%s[%d]: %w", key, i, err)
		}
	}
	return pats
}

func (p *problems) cidrs(key string, in []string) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range in {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				pfx, err = a.Prefix(a.BitLen())
			}
		}
		if err != nil {
			p.add("%s[%d]: invalid CIDR %q", key, i, s)
			continue
		}
		out = append(out, pfx.Masked())
	}
	return out
}

// hosts merges the file's pins with the flags' (a flag's name replaces the
// file's entry for that name). A value is one address or a list.
func (p *problems) hosts(file, flag any) map[string][]netip.Addr {
	merged := map[string]any{}
	for _, src := range []any{file, flag} {
		switch m := src.(type) {
		case nil:
		case map[string]any:
			maps.Copy(merged, m)
		case map[string][]string:
			for k, v := range m {
				merged[k] = v
			}
		default:
			p.add("hosts: must be an object of name: address, not %s", typeName(src))
		}
	}
	out := map[string][]netip.Addr{}
	for _, name := range slices.Sorted(maps.Keys(merged)) {
		val := merged[name]
		key := "hosts." + name
		host, isIP, err := engine.NormalizeHost(name)
		if err != nil || isIP {
			p.add("%s: %q is not a host name", key, name)
			continue
		}
		addrs, ok := stringList(val)
		if !ok || len(addrs) == 0 {
			p.add("%s: must be an address or a list of addresses, not %s", key, typeName(val))
			continue
		}
		for _, s := range addrs {
			a, err := netip.ParseAddr(strings.Trim(s, "[]"))
			if err != nil {
				p.add("%s: invalid IP address %q", key, s)
				continue
			}
			out[host] = append(out[host], a.Unmap())
		}
	}
	return out
}

func stringList(v any) ([]string, bool) {
	switch x := v.(type) {
	case string:
		return []string{x}, true
	case []string:
		return x, true
	case []any:
		out := make([]string, 0, len(x))
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

func (p *problems) duration(key string, d time.Duration) time.Duration {
	if d < 0 {
		p.add("%s: %v is negative", key, d)
	}
	return d
}

func (p *problems) upstream(w wireProxy) Upstream {
	u := Upstream{URL: w.Upstream, CAFile: w.UpstreamCA, AuthFile: w.UpstreamAuthFile, No: w.NoUpstream}
	switch w.UpstreamConnect {
	case "", "name":
	case "address":
		u.ByAddress = true
	default:
		p.add("proxy.upstream_connect: %q is not name or address", w.UpstreamConnect)
	}
	if u.URL == "" || u.URL == UpstreamEnv {
		if u.URL == "" && (u.CAFile != "" || u.AuthFile != "" || len(u.No) > 0 || u.ByAddress) {
			p.add("proxy.upstream: the other proxy.upstream_* keys and proxy.no_upstream need it")
		}
		return u
	}
	parsed, err := url.Parse(u.URL)
	switch {
	case err != nil || parsed.Host == "":
		p.add("proxy.upstream: %s is not a URL of the form scheme://host:port, or env", redact(u.URL))
	case !slices.Contains([]string{"http", "https", "socks5", "socks5h"}, parsed.Scheme):
		p.add("proxy.upstream: scheme %q is not http, https, socks5 or socks5h", parsed.Scheme)
	}
	return u
}

// redact hides a password in a URL that may not parse.
func redact(raw string) string {
	if u, err := url.Parse(raw); err == nil {
		return u.Redacted()
	}
	return "(a URL that does not parse)"
}

func (p *problems) isolate(w wireIsolate) Isolate {
	iso := Isolate{Enabled: w.Enabled, Mode: w.Mode, Hide: w.Hide, User: w.User, HTTPPorts: w.HTTPPorts, DNSPool: w.DNSPool}
	if w.DNSPool != 0 && (w.DNSPool < MinDNSPool || w.DNSPool > 1<<20) {
		p.add("isolate.dns_pool: %d is not between %d and %d", w.DNSPool, MinDNSPool, 1<<20)
	}
	switch w.Mode {
	case "":
		iso.Mode = IsolateTransparent
	case IsolateTransparent, IsolateProxy:
	default:
		p.add("isolate.mode: %q is not %s or %s", w.Mode, IsolateTransparent, IsolateProxy)
	}
	for _, port := range w.HTTPPorts {
		if port < 1 || port > 65535 {
			p.add("isolate.http_ports: %d is not a port", port)
		}
	}
	return iso
}

func (p *problems) count(key string, n int) int {
	if n < 0 {
		p.add("%s: %d is negative", key, n)
	}
	return n
}

func (p *problems) level(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		p.add("log.level: %q is not debug, info, warn or error", s)
	}
	return l
}

func (p *problems) format(s string) string {
	if s != "text" && s != "json" {
		p.add("log.format: %q is not text or json", s)
	}
	return s
}

// opa checks OPA's configuration with OPA's own validation, as the engine
// will use it (engine.ValidateOPAConfig): every problem, named by its key.
func (p *problems) opa(v any) []byte {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		p.add("opa: must be an object (OPA's configuration), not %s", typeName(v))
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		p.add("opa: encoding as JSON: %w", err)
		return nil
	}
	if err := engine.ValidateOPAConfig(b); err != nil {
		if multi, ok := err.(interface{ Unwrap() []error }); ok {
			*p = append(*p, multi.Unwrap()...)
		} else {
			*p = append(*p, err)
		}
		return nil
	}
	return b
}

func (p *problems) methods(key string, in []string) []string {
	for i, m := range in {
		if m == "" || strings.IndexFunc(m, func(r rune) bool { return r < 'A' || r > 'Z' }) >= 0 {
			p.add("%s[%d]: %q is not an upper-case HTTP method", key, i, m)
		}
	}
	return in
}

// allowPaths turns HOST/GLOB entries into host → globs.
func (p *problems) allowPaths(in []string) map[string][]string {
	if len(in) == 0 {
		return nil
	}
	out := map[string][]string{}
	for i, e := range in {
		slash := strings.IndexByte(e, '/')
		if slash <= 0 {
			p.add("allow_paths[%d]: %q is not HOST/PATH (github.com/acme/**)", i, e)
			continue
		}
		host, _, err := engine.NormalizeHost(e[:slash])
		if err != nil {
			p.add("allow_paths[%d]: %q: %w", i, e, err)
			continue
		}
		out[host] = append(out[host], e[slash:])
	}
	return out
}

func (p *problems) inspection(w wireInspect, patterns bool) Inspection {
	in := Inspection{Enabled: w.Enabled || patterns || w.CACert != "", CACert: w.CACert, CAKey: w.CAKey, UpstreamCA: w.UpstreamCA}
	if (w.CACert == "") != (w.CAKey == "") {
		p.add("inspection.ca_cert and inspection.ca_key: give both or neither")
	}
	return in
}

// data is the file's data object with methods, inspect and paths (if any)
// at regate.methods, regate.inspect and regate.paths.
func (p *problems) data(v any, methods, inspect []string, paths map[string][]string) map[string]any {
	out := map[string]any{}
	if v != nil {
		m, ok := v.(map[string]any)
		if !ok {
			p.add("data: must be an object, not %s", typeName(v))
		} else {
			out = m
		}
	}
	set := func(key string, v any) {
		regate, ok := out["regate"].(map[string]any)
		if !ok {
			regate = map[string]any{}
			out["regate"] = regate
		}
		regate[key] = v
	}
	if len(methods) > 0 {
		set("methods", methods)
	}
	if len(inspect) > 0 {
		set("inspect", inspect)
	}
	if len(paths) > 0 {
		obj := make(map[string]any, len(paths))
		for host, globs := range paths {
			obj[host] = globs
		}
		set("paths", obj)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// listener checks a proxy listener address: "off", or HOST:PORT on a
// loopback address unless listen_any.
func (p *problems) listener(key, addr string, listenAny bool) string {
	if addr == "" || strings.EqualFold(addr, Off) {
		return ""
	}
	host, ok := p.hostPort(key, addr)
	if ok && !listenAny && !isLoopback(host) {
		p.add("%s: %q is not a loopback address (set listen_any to listen on other interfaces)", key, addr)
	}
	return addr
}

// pprof checks the profiling address: "off" or a loopback HOST:PORT
// (never any other interface, whatever listen_any says: the profiles show
// memory, and the endpoints cost CPU).
func (p *problems) pprof(addr string) string {
	if addr == "" || strings.EqualFold(addr, Off) {
		return ""
	}
	host, ok := p.hostPort("pprof", addr)
	if ok && !isLoopback(host) {
		p.add("pprof: %q is not a loopback address", addr)
	}
	return addr
}

// admin checks the admin address: "off", "unix:PATH" or a loopback
// HOST:PORT with a token file (never any other interface).
func (p *problems) admin(a wireAdmin) Admin {
	if a.Addr == "" || strings.EqualFold(a.Addr, Off) {
		return Admin{TokenFile: a.TokenFile}
	}
	if path, ok := strings.CutPrefix(a.Addr, "unix:"); ok {
		if path == "" {
			p.add("admin.addr: %q names no socket path", a.Addr)
		}
		return Admin{Addr: a.Addr, TokenFile: a.TokenFile}
	}
	host, ok := p.hostPort("admin.addr", a.Addr)
	if ok && !isLoopback(host) {
		p.add("admin.addr: %q is not unix:PATH or a loopback address", a.Addr)
	}
	if a.TokenFile == "" {
		p.add("admin.token_file: required when admin.addr %q is TCP", a.Addr)
	} else if _, err := os.Stat(a.TokenFile); err != nil && !os.IsNotExist(err) {
		p.add("admin.token_file: %q: %w", a.TokenFile, unwrapPath(err))
	} else if err != nil {
		// A missing file is generated by serve; its directory must exist.
		if _, err := os.Stat(filepath.Dir(a.TokenFile)); err != nil {
			p.add("admin.token_file: %q: directory: %w", a.TokenFile, unwrapPath(err))
		}
	}
	return Admin{Addr: a.Addr, TokenFile: a.TokenFile}
}

func (p *problems) hostPort(key, addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		p.add("%s: %q is not HOST:PORT", key, addr)
		return "", false
	}
	if n, err := net.LookupPort("tcp", port); err != nil || n < 0 {
		p.add("%s: %q has an invalid port", key, addr)
		return "", false
	}
	return host, true
}

// isLoopback reports whether host is "localhost" or a loopback IP.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
