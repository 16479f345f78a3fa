package config

import (
	"encoding/json"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestLoadFormats(t *testing.T) {
	want := &Config{
		Policies:        []string{"testdata/policy.rego"},
		Allow:           []string{"allowed.test", "**.example.com"},
		Deny:            []string{"evil.test"},
		Data:            map[string]any{"team": map[string]any{"OwnerName": "Platform"}, "regate": map[string]any{"methods": []string{"GET", "HEAD"}}},
		AllowCIDRs:      []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("192.0.2.7/32")},
		Hosts:           map[string][]netip.Addr{"allowed.test": {netip.MustParseAddr("127.0.0.1")}, "pinned.example.com": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")}},
		DecisionTimeout: 250 * time.Millisecond, DecisionLog: "-", VerificationKeyID: "global_key", DecisionCache: true, Audit: true,
		LogLevel: slog.LevelDebug, LogFormat: "json",
		HTTP: "127.0.0.1:3129", ShutdownTimeout: 5 * time.Second,
		Admin: Admin{Addr: "unix:/tmp/regate-admin.sock"},
		Proxy: ProxyLimits{HeaderTimeout: 3 * time.Second, DialTimeout: 4 * time.Second, IdleTimeout: time.Minute,
			TLSPeekTimeout: 2 * time.Second, MaxHeaderBytes: 32768, MaxTunnels: 64},
		Isolate: Isolate{Enabled: true, Mode: IsolateProxy, Hide: []string{"/srv/secret"}, HTTPPorts: []int{80, 8000}},
	}
	wantOPA := `{"labels":{"Region":"EU"},"services":{"AcmeCorp":{"url":"https://bundles.example.com"}}}`
	for _, file := range []string{"testdata/full.yaml", "testdata/full.toml", "testdata/full.json"} {
		t.Run(file, func(t *testing.T) {
			got, err := Load(Options{File: file})
			if err != nil {
				t.Fatal(err)
			}
			if string(got.OPA) != wantOPA {
				t.Errorf("OPA = %s, want %s (case preserved, unchanged)", got.OPA, wantOPA)
			}
			got.OPA, got.File = nil, ""
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestPrecedence(t *testing.T) {
	tests := []struct {
		name    string
		file    string
		env     map[string]string
		flags   map[string]any
		allow   []string
		timeout time.Duration
		tunnels int
	}{
		{name: "defaults", allow: nil, timeout: 0, tunnels: 0},
		{name: "file", file: "testdata/small.yaml", allow: []string{"file.test"}, timeout: time.Second, tunnels: 10},
		{
			name: "env over file", file: "testdata/small.yaml",
			env:   map[string]string{"REGATE_ALLOW": "env.test, env2.test", "REGATE_PROXY_MAX_TUNNELS": "20"},
			allow: []string{"env.test", "env2.test"}, timeout: time.Second, tunnels: 20,
		},
		{
			name: "flags over env and file", file: "testdata/small.yaml",
			env:   map[string]string{"REGATE_ALLOW": "env.test", "REGATE_DECISION_TIMEOUT": "2s"},
			flags: map[string]any{"allow": []string{"flag.test"}, "decision_timeout": 3 * time.Second},
			allow: []string{"flag.test"}, timeout: 3 * time.Second, tunnels: 10,
		},
		{
			name: "config file from the environment", env: map[string]string{"REGATE_CONFIG": "testdata/small.yaml"},
			allow: []string{"file.test"}, timeout: time.Second, tunnels: 10,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := Load(Options{File: tt.file, Flags: tt.flags})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Allow, tt.allow) {
				t.Errorf("allow = %q, want %q", cfg.Allow, tt.allow)
			}
			if cfg.DecisionTimeout != tt.timeout {
				t.Errorf("decision_timeout = %v, want %v", cfg.DecisionTimeout, tt.timeout)
			}
			if cfg.Proxy.MaxTunnels != tt.tunnels {
				t.Errorf("proxy.max_tunnels = %d, want %d", cfg.Proxy.MaxTunnels, tt.tunnels)
			}
		})
	}
}

func TestEveryProblemAtOnce(t *testing.T) {
	_, err := Load(Options{File: "testdata/broken.yaml"})
	if err == nil {
		t.Fatal("broken.yaml loaded without error")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("the upstream proxy's password is in the error:\n%v", err)
	}
	for _, want := range []string{
		`unknown key "proxy.max_tunels"`,
		`unknown key "colour"`,
		`policies[0]: "testdata/does-not-exist.rego": no such file`,
		`allow[1]: pattern "bad..pattern"`,
		`allow_cidrs[0]: invalid CIDR "10.0.0/8"`,
		`hosts.pinned.test: invalid IP address "not-an-ip"`,
		`http: "0.0.0.0:3128" is not a loopback address`,
		`log.level: "loud"`,
		`proxy.dial_timeout: -1s is negative`,
		`opa: must be an object`,
		`isolate.mode: "tun" is not transparent or proxy`,
		`isolate.http_ports: 0 is not a port`,
		`isolate.http_ports: 70000 is not a port`,
		`isolate.dns_pool: 10 is not between 256 and 1048576`,
		`proxy.upstream: scheme "ftp" is not http, https, socks5 or socks5h`,
		`proxy.upstream_connect: "sideways" is not name or address`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		opts  Options
		env   map[string]string
		wants string
	}{
		{name: "missing file", opts: Options{File: "testdata/nope.yaml"}, wants: "reading configuration"},
		{name: "syntax", opts: Options{File: "testdata/syntax.yaml"}, wants: "parsing testdata/syntax.yaml"},
		{name: "bad extension", opts: Options{File: "testdata/policy.rego"}, wants: `unsupported file type "rego"`},
		{name: "bad env duration", env: map[string]string{"REGATE_DECISION_TIMEOUT": "soon"}, wants: "decision_timeout"},
		{name: "bad flag pattern", opts: Options{Flags: map[string]any{"deny": []string{"a b"}}}, wants: `deny[0]: pattern "a b"`},
		{name: "bad resolve", opts: Options{Flags: map[string]any{"hosts": map[string][]string{"x.test": {"1.2.3"}}}}, wants: `hosts.x.test: invalid IP address "1.2.3"`},
		{name: "admin tcp without token", opts: Options{Flags: map[string]any{"admin.addr": "127.0.0.1:9000"}}, wants: "admin.token_file: required"},
		{name: "admin on any interface", opts: Options{Flags: map[string]any{"admin.addr": "0.0.0.0:9000", "listen_any": true}}, wants: "admin.addr"},
		{name: "lower-case method", opts: Options{Flags: map[string]any{"methods": []string{"get"}}}, wants: `methods[0]: "get"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := Load(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wants) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wants)
			}
		})
	}
}

func TestListeners(t *testing.T) {
	tests := []struct {
		name        string
		mode        Mode
		flags       map[string]any
		http, socks string
	}{
		{name: "serve defaults", mode: ModeServe, http: "127.0.0.1:3128", socks: "127.0.0.1:1080"},
		{name: "run defaults", mode: ModeRun, http: "127.0.0.1:0", socks: "127.0.0.1:0"},
		{name: "off", mode: ModeServe, flags: map[string]any{"socks": "off"}, http: "127.0.0.1:3128"},
		{name: "listen any", mode: ModeServe, flags: map[string]any{"http": ":3128", "listen_any": true}, http: ":3128", socks: "127.0.0.1:1080"},
		{name: "ipv6 loopback", mode: ModeServe, flags: map[string]any{"http": "[::1]:3128"}, http: "[::1]:3128", socks: "127.0.0.1:1080"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(Options{Mode: tt.mode, Flags: tt.flags})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.HTTP != tt.http || cfg.SOCKS != tt.socks {
				t.Errorf("http, socks = %q, %q; want %q, %q", cfg.HTTP, cfg.SOCKS, tt.http, tt.socks)
			}
		})
	}
}

func TestHostsFlagsOverrideFile(t *testing.T) {
	cfg, err := Load(Options{File: "testdata/full.yaml", Flags: map[string]any{
		"hosts": map[string][]string{"allowed.test": {"127.0.0.2"}, "new.test": {"::1"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]netip.Addr{
		"allowed.test":       {netip.MustParseAddr("127.0.0.2")},
		"new.test":           {netip.MustParseAddr("::1")},
		"pinned.example.com": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")},
	}
	if !reflect.DeepEqual(cfg.Hosts, want) {
		t.Errorf("hosts = %v, want %v", cfg.Hosts, want)
	}
}

func TestKeysHaveEnvNames(t *testing.T) {
	keys := Keys()
	if len(keys) < 20 {
		t.Fatalf("Keys() = %d keys, want every key", len(keys))
	}
	if got := EnvName("proxy.max_header_bytes"); got != "REGATE_PROXY_MAX_HEADER_BYTES" {
		t.Errorf("EnvName = %q", got)
	}
	b, _ := json.Marshal(keys)
	for _, k := range []string{"opa", "admin.token_file", "proxy.max_tunnels", "allow_cidrs"} {
		if !strings.Contains(string(b), `"`+k+`"`) {
			t.Errorf("Keys() lacks %q", k)
		}
	}
}

func TestAdmin(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name  string
		mode  Mode
		flags map[string]any
		want  Admin
	}{
		{name: "serve default", mode: ModeServe, want: DefaultAdmin()},
		{name: "serve off", mode: ModeServe, flags: map[string]any{"admin.addr": "off"}, want: Admin{TokenFile: DefaultAdmin().TokenFile}},
		{name: "run default off", mode: ModeRun},
		{name: "token file to generate", mode: ModeRun,
			flags: map[string]any{"admin.addr": "127.0.0.1:0", "admin.token_file": dir + "/token"},
			want:  Admin{Addr: "127.0.0.1:0", TokenFile: dir + "/token"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Load(Options{Mode: tt.mode, Flags: tt.flags})
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Admin != tt.want {
				t.Errorf("admin = %+v, want %+v", cfg.Admin, tt.want)
			}
		})
	}
	_, err := Load(Options{Mode: ModeRun, Flags: map[string]any{"admin.addr": "127.0.0.1:0", "admin.token_file": dir + "/nope/token"}})
	if err == nil || !strings.Contains(err.Error(), "admin.token_file") {
		t.Errorf("token file in a missing directory: err = %v", err)
	}
}

func TestPprof(t *testing.T) {
	tests := []struct {
		name    string
		env     string
		flags   map[string]any
		want    string
		wantErr string
	}{
		{name: "off by default"},
		{name: "flag", flags: map[string]any{"pprof": "127.0.0.1:6060"}, want: "127.0.0.1:6060"},
		{name: "environment", env: "[::1]:6060", want: "[::1]:6060"},
		{name: "flag over environment", env: "127.0.0.1:1", flags: map[string]any{"pprof": "off"}},
		{name: "not loopback", flags: map[string]any{"pprof": "0.0.0.0:6060"}, wantErr: `pprof: "0.0.0.0:6060" is not a loopback address`},
		{name: "not loopback even with listen_any", flags: map[string]any{"pprof": ":6060", "listen_any": true}, wantErr: `pprof: ":6060" is not a loopback address`},
		{name: "not host:port", env: "6060", wantErr: `pprof: "6060" is not HOST:PORT`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("REGATE_PPROF", tt.env)
			cfg, err := Load(Options{Mode: ModeServe, Flags: tt.flags})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Pprof != tt.want {
				t.Errorf("pprof = %q, want %q", cfg.Pprof, tt.want)
			}
		})
	}
}
