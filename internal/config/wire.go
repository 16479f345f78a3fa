package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"go.yaml.in/yaml/v3"
)

// wire is the configuration as written: decoded strictly (unknown keys are
// errors), then validated into Config. Keys are documented in the README.
type wire struct {
	Policies          []string      `mapstructure:"policies"`
	Allow             []string      `mapstructure:"allow"`
	Deny              []string      `mapstructure:"deny"`
	Methods           []string      `mapstructure:"methods"`
	Inspect           []string      `mapstructure:"inspect"`
	AllowPaths        []string      `mapstructure:"allow_paths"`
	Inspection        wireInspect   `mapstructure:"inspection"`
	Data              any           `mapstructure:"data" regate:"free"`
	AllowCIDRs        []string      `mapstructure:"allow_cidrs"`
	Hosts             any           `mapstructure:"hosts" regate:"free"`
	DecisionTimeout   time.Duration `mapstructure:"decision_timeout"`
	DecisionLog       string        `mapstructure:"decision_log"`
	Watch             bool          `mapstructure:"watch"`
	Audit             bool          `mapstructure:"audit"`
	DecisionCache     bool          `mapstructure:"decision_cache"`
	HTTP              string        `mapstructure:"http"`
	SOCKS             string        `mapstructure:"socks"`
	ListenAny         bool          `mapstructure:"listen_any"`
	AllowAnonymous    bool          `mapstructure:"allow_anonymous"`
	ShutdownTimeout   time.Duration `mapstructure:"shutdown_timeout"`
	Pprof             string        `mapstructure:"pprof"`
	VerificationKeyID string        `mapstructure:"verification_key_id"`
	Log               wireLog       `mapstructure:"log"`
	Admin             wireAdmin     `mapstructure:"admin"`
	Proxy             wireProxy     `mapstructure:"proxy"`
	Isolate           wireIsolate   `mapstructure:"isolate"`
	OPA               any           `mapstructure:"opa" regate:"free"`
	// Secrets is a list of objects, decoded strictly by validate (never
	// from REGATE_* variables: a secret's source is named, not given).
	Secrets any `mapstructure:"secrets" regate:"free"`
}

type wireInspect struct {
	Enabled    bool   `mapstructure:"enabled"`
	CACert     string `mapstructure:"ca_cert"`
	CAKey      string `mapstructure:"ca_key"`
	UpstreamCA string `mapstructure:"upstream_ca"`
}

type wireIsolate struct {
	Enabled   bool     `mapstructure:"enabled"`
	Mode      string   `mapstructure:"mode"`
	Hide      []string `mapstructure:"hide"`
	User      string   `mapstructure:"user"`
	HTTPPorts []int    `mapstructure:"http_ports"`
	DNSPool   int      `mapstructure:"dns_pool"`
}

type wireLog struct {
	Level  string `mapstructure:"level"`
	Format string `mapstructure:"format"`
}

type wireAdmin struct {
	Addr      string `mapstructure:"addr"`
	TokenFile string `mapstructure:"token_file"`
}

type wireProxy struct {
	HeaderTimeout  time.Duration `mapstructure:"header_timeout"`
	DialTimeout    time.Duration `mapstructure:"dial_timeout"`
	IdleTimeout    time.Duration `mapstructure:"idle_timeout"`
	TLSPeekTimeout time.Duration `mapstructure:"tls_peek_timeout"`
	MaxHeaderBytes int           `mapstructure:"max_header_bytes"`
	MaxTunnels     int           `mapstructure:"max_tunnels"`

	MaxTunnelsPerClient int `mapstructure:"max_tunnels_per_client"`
	MaxAttemptListeners int `mapstructure:"max_attempt_listeners"`

	Upstream         string   `mapstructure:"upstream"`
	UpstreamCA       string   `mapstructure:"upstream_proxy_ca"`
	UpstreamAuthFile string   `mapstructure:"upstream_auth_file"`
	UpstreamConnect  string   `mapstructure:"upstream_connect"`
	NoUpstream       []string `mapstructure:"no_upstream"`
}

// keyInfo describes one configuration key.
type keyInfo struct {
	free   bool // a free-form object (data, hosts, opa): not descended into
	branch bool // an object of further keys
}

// schema lists every key of wire in dotted form ("proxy.dial_timeout").
func schema() map[string]keyInfo {
	out := map[string]keyInfo{}
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for f := range t.Fields() {
			key := prefix + f.Tag.Get("mapstructure")
			switch {
			case f.Tag.Get("regate") == "free":
				out[key] = keyInfo{free: true}
			case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]():
				out[key] = keyInfo{branch: true}
				walk(f.Type, key+".")
			default:
				out[key] = keyInfo{}
			}
		}
	}
	walk(reflect.TypeFor[wire](), "")
	return out
}

// Keys returns every leaf and free-form configuration key in dotted form,
// sorted: what the file, REGATE_* variables and flags may set.
func Keys() []string {
	var keys []string
	for k, info := range schema() {
		if !info.branch {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// EnvName is the environment variable that sets key ("proxy.dial_timeout"
// → REGATE_PROXY_DIAL_TIMEOUT).
func EnvName(key string) string {
	return "REGATE_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// parseRaw decodes a configuration file keeping the case of every key (viper
// lower-cases keys, which free-form objects such as opa and data must not
// suffer), for the unknown-key check and the free-form values.
func parseRaw(path string, b []byte) (map[string]any, error) {
	var raw any
	switch ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), ".")); ext {
	case "yaml", "yml":
		if err := yaml.Unmarshal(b, &raw); err != nil {
			return nil, err
		}
	case "json":
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
	case "toml":
		if err := toml.Unmarshal(b, &raw); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unsupported file type %q (use .yaml, .yml, .json or .toml)", ext)
	}
	if raw == nil {
		return map[string]any{}, nil
	}
	v, err := plain(raw)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("the top level must be an object, not %s", typeName(v))
	}
	return m, nil
}

// plain converts decoded YAML/TOML/JSON into JSON-compatible values: objects
// with string keys, json.Number turned into int64 or float64.
func plain(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			p, err := plain(e)
			if err != nil {
				return nil, err
			}
			out[k] = p
		}
		return out, nil
	case map[any]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			p, err := plain(e)
			if err != nil {
				return nil, err
			}
			out[fmt.Sprint(k)] = p
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			p, err := plain(e)
			if err != nil {
				return nil, err
			}
			out[i] = p
		}
		return out, nil
	case json.Number:
		if n, err := x.Int64(); err == nil {
			return n, nil
		}
		return x.Float64()
	default:
		return v, nil
	}
}

// unknownKeys reports every key of raw that the schema does not know, by
// its dotted path.
func unknownKeys(raw map[string]any, known map[string]keyInfo, prefix string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(raw)) {
		key := prefix + k
		info, ok := known[key]
		switch {
		case !ok:
			out = append(out, key)
		case info.branch:
			if sub, isMap := raw[k].(map[string]any); isMap {
				out = append(out, unknownKeys(sub, known, key+".")...)
			}
		}
	}
	return out
}

func typeName(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case []any, []string:
		return "a list"
	case map[string]any:
		return "an object"
	default:
		return "a number"
	}
}
