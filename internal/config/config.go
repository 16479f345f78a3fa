// Package config reads regate's configuration: one file (YAML, TOML or
// JSON) through viper, REGATE_* environment variables over it, flags over
// both; decoded strictly and validated into a Config, with every problem
// reported at once.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"

	"github.com/regate/regate/internal/secrets"
)

// Mode selects the defaults that differ between subcommands.
type Mode int

// Modes.
const (
	// ModeServe is the daemon (and `check`): fixed loopback ports, anonymous
	// clients accepted.
	ModeServe Mode = iota
	// ModeRun is `regate run`: ephemeral loopback ports bound to one
	// attempt, quiet logs.
	ModeRun
	// ModeOneShot is `check` and `decide`: serve's defaults, quiet logs.
	ModeOneShot
)

// Off disables a listener.
const Off = "off"

// Config is the validated, runtime configuration.
type Config struct {
	// File is the configuration file read, "" for none.
	File string

	Policies []string
	Allow    []string
	Deny     []string
	Data     map[string]any // written under data; methods, inspect and paths land in regate.*
	Inspect  []string       // patterns of hosts whose tunnels are inspected
	// Paths are the path rules of allow_paths: host → globs.
	Paths      map[string][]string
	Inspection Inspection
	AllowCIDRs []netip.Prefix
	Hosts      map[string][]netip.Addr

	DecisionTimeout   time.Duration
	DecisionLog       string // "" off, "-" standard output, else a file
	Watch             bool
	Audit             bool // report-only: the policy's denies are allowed and logged audit
	DecisionCache     bool // remember deterministic decisions until the next store change
	VerificationKeyID string
	OPA               []byte // OPA's own configuration, JSON; nil when absent

	LogLevel  slog.Level
	LogFormat string // "text" or "json"

	HTTP, SOCKS     string // listener addresses, "" when off
	ListenAny       bool
	AllowAnonymous  bool
	ShutdownTimeout time.Duration
	// Pprof is the loopback HOST:PORT of the profiling endpoints
	// (net/http/pprof), "" when off.
	Pprof   string
	Admin   Admin
	Proxy   ProxyLimits
	Isolate Isolate
	// Secrets are the secrets: entries, completed by their presets and
	// validated (their values are read by regate run, not here).
	Secrets []secrets.Spec
}

// Inspection is HTTPS inspection's CA and upstream roots.
type Inspection struct {
	// Enabled: the policy may ask to inspect (also true when inspect or
	// allow_paths is set, or a CA is given).
	Enabled bool
	// CACert and CAKey are the CA's files; "" generates one in memory.
	CACert, CAKey string
	// UpstreamCA is a PEM file of roots trusted for upstream certificates
	// besides the system's.
	UpstreamCA string
}

// Isolate is `regate run --isolate` (Linux namespaces).
type Isolate struct {
	Enabled bool
	Mode    string   // IsolateTransparent or IsolateProxy
	Hide    []string // paths hidden from the command, besides the defaults
	User    string   // who the command runs as; "" the caller
	// HTTPPorts are the ports where a denied transparent flow answers an
	// HTTP request with the proxy's 403; nil is the default.
	HTTPPorts []int
	// DNSPool is how many names per address family the fake-IP DNS maps
	// at once (least recently used idle names give their address up
	// beyond it); 0 is the default.
	DNSPool int
}

// MinDNSPool is the smallest isolate.dns_pool.
const MinDNSPool = 256

// Modes of --isolate.
const (
	// IsolateTransparent also decides the programs that ignore the proxy
	// variables (a TUN link, fake-IP DNS); the default.
	IsolateTransparent = "transparent"
	// IsolateProxy leaves the proxy listeners the only way out: no link,
	// lookups fail.
	IsolateProxy = "proxy"
)

// Admin is where the admin API listens.
type Admin struct {
	Addr      string // "unix:PATH", a loopback HOST:PORT, or "" when off
	TokenFile string
}

// ProxyLimits are the proxy's limits; zero means the proxy's default.
type ProxyLimits struct {
	HeaderTimeout, DialTimeout, IdleTimeout, TLSPeekTimeout time.Duration
	MaxHeaderBytes, MaxTunnels                              int
	// MaxTunnelsPerClient is each client's share of MaxTunnels: an attempt's,
	// or an anonymous client address's.
	MaxTunnelsPerClient int
	// MaxAttemptListeners bounds the attempts that have listeners of their
	// own under serve (POST /v1/attempts with "listeners": true).
	MaxAttemptListeners int
	// Upstream is the parent proxy regate chains to.
	Upstream Upstream
}

// Upstream is the parent proxy (proxy.upstream and its keys).
type Upstream struct {
	// URL is the parent: http://, https:// or socks5(h):// with optional
	// user:password@; UpstreamEnv for regate's own proxy variables; ""
	// for none.
	URL      string
	CAFile   string   // roots for an https:// parent
	AuthFile string   // user:password, replacing the URL's
	No       []string // destinations dialled directly (NO_PROXY syntax)
	// ByAddress asks the parent for the address regate checked
	// (upstream_connect: address) instead of the name.
	ByAddress bool
}

// UpstreamEnv as proxy.upstream takes the parent from the HTTPS_PROXY,
// HTTP_PROXY, ALL_PROXY and NO_PROXY regate was started with.
const UpstreamEnv = "env"

// Options says where the configuration comes from.
type Options struct {
	// File is the configuration file (--config); "" falls back to
	// $REGATE_CONFIG, then to no file.
	File string
	// Flags are the values of the flags the user set, by dotted key
	// ("proxy.dial_timeout"); they override the file and the environment.
	// Values are strings, []string, bool, ints, durations, or for "hosts" a
	// map[string][]string.
	Flags map[string]any
	// Mode selects the defaults.
	Mode Mode
}

// keyDelim replaces viper's "." so that keys holding host names
// ("hosts: {api.example.com: …}") are not split.
const keyDelim = "::"

func vkey(key string) string { return strings.ReplaceAll(key, ".", keyDelim) }

// Load reads, merges, decodes and validates the configuration. Precedence,
// lowest first: defaults, file, REGATE_* environment variables, flags.
func Load(opts Options) (*Config, error) {
	file := opts.File
	if file == "" {
		file = os.Getenv("REGATE_CONFIG")
	}
	v := viper.NewWithOptions(viper.KeyDelimiter(keyDelim))
	setDefaults(v, opts.Mode)
	known := schema()
	var raw map[string]any
	var errs []error
	if file != "" {
		var err error
		raw, err = readFile(v, file)
		if err != nil {
			return nil, err
		}
		for _, k := range unknownKeys(raw, known, "") {
			errs = append(errs, fmt.Errorf("%s: unknown key %q", file, k))
		}
	}
	for key, info := range known {
		if !info.branch && !info.free {
			_ = v.BindEnv(vkey(key), EnvName(key)) // only fails without a key
		}
	}
	for key, val := range opts.Flags {
		if _, ok := known[key]; !ok {
			errs = append(errs, fmt.Errorf("flag for unknown key %q", key))
			continue
		}
		v.Set(vkey(key), val)
	}
	var w wire
	if err := v.Unmarshal(&w, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		parseScalar, splitList,
	))); err != nil {
		errs = append(errs, decodeErrors(err, origin(file, opts.Flags))...)
	}
	// Free-form objects keep their keys' case: take them from the raw file.
	fromFile := func(key string) any { return raw[key] }
	cfg, err := validate(&w, fromFile, opts.Flags)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.File = file
	return cfg, nil
}

func setDefaults(v *viper.Viper, mode Mode) {
	v.SetDefault(vkey("log.level"), "info")
	v.SetDefault(vkey("log.format"), "text")
	v.SetDefault("watch", true)
	v.SetDefault("decision_cache", true)
	v.SetDefault("shutdown_timeout", 30*time.Second)
	switch mode {
	case ModeRun:
		// The command run is who run guards against: it could write the
		// policy files, so they are not watched unless asked.
		v.SetDefault("watch", false)
		v.SetDefault("http", "127.0.0.1:0")
		v.SetDefault("socks", "127.0.0.1:0")
		v.SetDefault("allow_anonymous", false)
		v.SetDefault("shutdown_timeout", 2*time.Second)
		v.SetDefault(vkey("log.level"), "warn")
	default:
		v.SetDefault("http", "127.0.0.1:3128")
		v.SetDefault("socks", "127.0.0.1:1080")
		v.SetDefault("allow_anonymous", true)
	}
	if mode == ModeServe {
		d := DefaultAdmin()
		v.SetDefault(vkey("admin.addr"), d.Addr)
		if d.TokenFile != "" {
			v.SetDefault(vkey("admin.token_file"), d.TokenFile)
		}
	}
	if mode == ModeOneShot {
		v.SetDefault(vkey("log.level"), "warn")
	}
}

// readFile reads path once, hands it to viper and returns the raw,
// case-preserving decode.
func readFile(v *viper.Viper, path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading configuration: %w", err)
	}
	raw, err := parseRaw(path, b)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), "."))
	v.SetConfigType(ext)
	if err := v.ReadConfig(bytes.NewReader(b)); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	return raw, nil
}

// splitList lets a single string (an environment variable) fill a list:
// items separated by commas or white space.
func splitList(from, to reflect.Value) (any, error) {
	if from.Kind() != reflect.String || to.Type() != reflect.TypeFor[[]string]() {
		return from.Interface(), nil
	}
	return strings.FieldsFunc(from.String(), func(r rune) bool {
		return r == ',' || unicode.IsSpace(r)
	}), nil
}

// origin says where a key's value came from, for error messages.
func origin(file string, flags map[string]any) func(key string) string {
	return func(key string) string {
		if _, ok := flags[key]; ok {
			return "flag"
		}
		if _, ok := os.LookupEnv(EnvName(key)); ok {
			return "$" + EnvName(key)
		}
		return file
	}
}

// parseScalar parses durations and integers given as strings (environment
// variables, or "250ms" in a file), naming the value when it is wrong.
func parseScalar(from, to reflect.Value) (any, error) {
	if from.Kind() != reflect.String {
		return from.Interface(), nil
	}
	s := strings.TrimSpace(from.String())
	switch {
	case to.Type() == reflect.TypeFor[time.Duration]():
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a duration (like 250ms, 5s, 1m)", s)
		}
		return d, nil
	case to.Kind() == reflect.Int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", s)
		}
		return n, nil
	case to.Kind() == reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	}
	return from.Interface(), nil
}

// decodeErrors splits mapstructure's error into one error per key.
func decodeErrors(err error, from func(string) string) []error {
	var out []error
	inner := errors.Unwrap(err)
	multi, ok := inner.(interface{ Unwrap() []error })
	if !ok {
		return []error{fmt.Errorf("decoding configuration: %w", err)}
	}
	for _, e := range multi.Unwrap() {
		var de *mapstructure.DecodeError
		if errors.As(e, &de) {
			key := strings.ReplaceAll(de.Name(), keyDelim, ".")
			e = fmt.Errorf("%s: %w (from %s)", key, de.Unwrap(), from(key))
		}
		out = append(out, e)
	}
	return out
}
