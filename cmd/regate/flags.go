package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/regate/regate/internal/config"
)

// flagKey maps a flag to the configuration key it overrides.
type flagKey struct{ flag, key string }

// flagKeys lists every flag that sets a configuration key; flags not listed
// (--config, --attempt-id, --quiet, …) belong to their command only.
func flagKeys() []flagKey {
	return []flagKey{
		{"policy", "policies"},
		{"allow", "allow"},
		{"deny", "deny"},
		{"methods", "methods"},
		{"allow-cidr", "allow_cidrs"},
		{"resolve", "hosts"},
		{"decision-log", "decision_log"},
		{"decision-timeout", "decision_timeout"},
		{"log-level", "log.level"},
		{"log-format", "log.format"},
		{"watch", "watch"},
		{"audit", "audit"},
		{"http", "http"},
		{"socks", "socks"},
		{"admin", "admin.addr"},
		{"admin-token-file", "admin.token_file"},
		{"listen-any", "listen_any"},
		{"allow-anonymous", "allow_anonymous"},
		{"shutdown-timeout", "shutdown_timeout"},
		{"pprof", "pprof"},
		{"isolate", "isolate.enabled"},
		{"hide", "isolate.hide"},
		{"isolate-user", "isolate.user"},
		{"upstream-proxy", "proxy.upstream"},
		{"inspect", "inspect"},
		{"allow-path", "allow_paths"},
		{"inspect-ca", "inspection.ca_cert"},
		{"inspect-key", "inspection.ca_key"},
		{"upstream-ca", "inspection.upstream_ca"},
		{"upstream-proxy-auth-file", "proxy.upstream_auth_file"},
	}
}

// addPolicyFlags adds the flags every policy-evaluating command shares.
func addPolicyFlags(fs *pflag.FlagSet) {
	fs.String("config", "", "configuration file (YAML, TOML or JSON); default $REGATE_CONFIG")
	fs.StringSlice("policy", nil, "policy `PATH`: .rego file, directory or bundle (repeatable; replaces the embedded default)")
	fs.StringSlice("allow", nil, "allow `PATTERN` (repeatable): example.com, *.example.com, **.example.com, *, IP, CIDR, each with optional :PORT")
	fs.StringSlice("deny", nil, "deny `PATTERN` (repeatable; wins over allow)")
	fs.StringSlice("methods", nil, "HTTP `METHODS` allowed for plain HTTP (data.regate.methods), e.g. GET,HEAD,OPTIONS")
	fs.StringSlice("allow-cidr", nil, "exempt `CIDR` from the SSRF guard (repeatable)")
	fs.StringSlice("inspect", nil, "inspect HTTPS to hosts matching `PATTERN` (repeatable): each request inside is decided (--methods, --allow-path)")
	fs.StringSlice("allow-path", nil, "allow only `HOST/GLOB` paths on HOST, e.g. github.com/acme/** (repeatable; HOST is allowed and inspected)")
	fs.StringSlice("resolve", nil, "pin `NAME:IP` instead of DNS (repeatable)")
	fs.String("decision-log", "", "write decision-log events as JSON lines to `PATH` (- for standard output)")
	fs.Bool("audit", false, "report-only: allow what the policy denies and log it as audit (\"would deny\"); the SSRF guard and regate's own checks still deny")
	fs.Duration("decision-timeout", 0, "bound on one policy evaluation (default 100ms)")
	fs.String("log-level", "", "log level: debug, info, warn, error")
	fs.String("log-format", "", "log format: text or json")
}

// addListenerFlags adds the listener flags of run and serve.
func addListenerFlags(fs *pflag.FlagSet, httpDef, socksDef, adminDef string, watchDef bool) {
	fs.String("http", "", "HTTP proxy listener `ADDR`, or off (default "+httpDef+")")
	fs.String("socks", "", "SOCKS5 listener `ADDR`, or off (default "+socksDef+")")
	fs.String("admin", "", "admin API `ADDR`: unix:PATH or loopback HOST:PORT, or off (default "+adminDef+")")
	fs.String("admin-token-file", "", "bearer token `FILE` for a TCP admin listener (generated when missing)")
	fs.Bool("listen-any", false, "allow proxy listeners on non-loopback addresses")
	fs.Bool("watch", watchDef, "reload local policy files when they change")
	fs.Duration("shutdown-timeout", 0, "how long shutdown drains connections")
	fs.String("pprof", "", "serve Go's profiling endpoints (/debug/pprof/) on loopback `ADDR` (HOST:PORT); off by default")
	fs.String("upstream-proxy", "", "chain to a parent proxy: `URL` (http://, https://, socks5://, with optional user:password@) or env (the HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY regate was started with)")
	fs.String("upstream-proxy-auth-file", "", "`FILE` with user:password for the parent proxy (yours, mode 0600)")
	fs.String("inspect-ca", "", "HTTPS inspection CA certificate `FILE` (PEM; default: generated in memory)")
	fs.String("inspect-key", "", "HTTPS inspection CA key `FILE` (PEM, yours, mode 0600)")
	fs.String("upstream-ca", "", "also trust the CA certificates in `FILE` (PEM) for inspected upstreams")
}

// overrides returns the configuration values of the flags the user set.
func overrides(fs *pflag.FlagSet) (map[string]any, error) {
	out := map[string]any{}
	for _, fk := range flagKeys() {
		f := fs.Lookup(fk.flag)
		if f == nil || !f.Changed {
			continue
		}
		if f.Name == "isolate" {
			if err := isolateFlag(f.Value.String(), out); err != nil {
				return nil, err
			}
			continue
		}
		v, err := flagValue(fs, f)
		if err != nil {
			return nil, err
		}
		out[fk.key] = v
	}
	return out, nil
}

func flagValue(fs *pflag.FlagSet, f *pflag.Flag) (any, error) {
	if f.Name == "resolve" {
		pins, _ := fs.GetStringSlice("resolve")
		return parseResolve(pins)
	}
	switch f.Value.Type() {
	case "stringSlice":
		return fs.GetStringSlice(f.Name)
	case "bool":
		return fs.GetBool(f.Name)
	case "duration":
		return fs.GetDuration(f.Name)
	case "int":
		return fs.GetInt(f.Name)
	default:
		return f.Value.String(), nil
	}
}

// isolateFlag sets isolate.enabled and isolate.mode from --isolate[=MODE]:
// a mode turns isolation on, false turns it off.
func isolateFlag(v string, out map[string]any) error {
	switch v {
	case config.IsolateTransparent, config.IsolateProxy:
		out["isolate.enabled"], out["isolate.mode"] = true, v
	case "true":
		out["isolate.enabled"] = true
	case "false":
		out["isolate.enabled"] = false
	default:
		return fmt.Errorf("--isolate=%q: want %s or %s", v, config.IsolateTransparent, config.IsolateProxy)
	}
	return nil
}

// parseResolve turns NAME:IP pins into the hosts map; the name is what
// comes before the first colon, so IPv6 needs no brackets.
func parseResolve(pins []string) (map[string][]string, error) {
	hosts := map[string][]string{}
	for _, p := range pins {
		name, ip, ok := strings.Cut(p, ":")
		if !ok || name == "" || ip == "" {
			return nil, fmt.Errorf("--resolve %q: want NAME:IP", p)
		}
		hosts[name] = append(hosts[name], ip)
	}
	return hosts, nil
}

// loadConfig reads the configuration for cmd: file, environment, then the
// flags the user set.
func loadConfig(cmd *cobra.Command, mode config.Mode) (*config.Config, error) {
	flags, err := overrides(cmd.Flags())
	if err != nil {
		return nil, err
	}
	file, _ := cmd.Flags().GetString("config")
	cfg, err := config.Load(config.Options{File: file, Flags: flags, Mode: mode})
	if err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return cfg, nil
}
