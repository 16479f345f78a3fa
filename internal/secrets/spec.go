// Package secrets keeps credentials outside the sandbox: the command gets
// a per-run placeholder shaped like each credential, and the proxy puts
// the real value into the allowed requests to the hosts it is bound to
// (README, "Keeping secrets out of the sandbox").
package secrets

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/regate/regate/engine"
)

// How a credential is sent.
const (
	SendBearer = "bearer" // Authorization: Bearer VALUE
	SendBasic  = "basic"  // the password of HTTP Basic, as git and npm send tokens
	SendHeader = "header" // a header of its own (Spec.Header), such as x-api-key
)

// Spec is one configured secret: where its real value comes from, how it
// is sent, the hosts it is bound to and the child's variables that get its
// placeholder.
type Spec struct {
	Name string `json:"name" mapstructure:"name"`
	// Env is the variable of regate's own environment holding the value;
	// "" with File empty: the first of Vars that is set.
	Env string `json:"env,omitempty" mapstructure:"env"`
	// File holds the value (trailing newline dropped); it must pass the
	// checks of the admin token file (the user's own, mode 0600).
	File   string   `json:"file,omitempty" mapstructure:"file"`
	Send   string   `json:"send,omitempty" mapstructure:"send"`
	Header string   `json:"header,omitempty" mapstructure:"header"`
	Hosts  []string `json:"hosts" mapstructure:"hosts"`
	Vars   []string `json:"vars" mapstructure:"vars"`
}

// Presets are the built-in secrets, off unless named; a configured entry
// of the same name overrides the fields it sets.
var Presets = map[string]Spec{
	"github": {
		Name: "github", Send: SendBearer,
		Hosts: []string{"github.com", "api.github.com", "*.githubusercontent.com"},
		Vars:  []string{"GH_TOKEN", "GITHUB_TOKEN"},
	},
	"openai": {
		Name: "openai", Send: SendBearer,
		Hosts: []string{"api.openai.com"},
		Vars:  []string{"OPENAI_API_KEY"},
	},
	"anthropic": {
		Name: "anthropic", Send: SendHeader, Header: "x-api-key",
		Hosts: []string{"api.anthropic.com"},
		Vars:  []string{"ANTHROPIC_API_KEY"},
	},
	"npm": {
		Name: "npm", Send: SendBearer,
		Hosts: []string{"registry.npmjs.org"},
		Vars:  []string{"NPM_TOKEN"},
	},
}

var (
	nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,63}$`)
	varRE  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// headerRE is an HTTP token (RFC 9110 §5.6.2).
	headerRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// WithPreset completes s with the preset of its name: the fields s leaves
// empty come from the preset. A name without a preset is returned as is.
func WithPreset(s Spec) Spec {
	p, ok := Presets[s.Name]
	if !ok {
		return s
	}
	if s.Env == "" && s.File == "" {
		s.Env, s.File = p.Env, p.File
	}
	if s.Send == "" {
		s.Send, s.Header = p.Send, p.Header
	}
	if len(s.Hosts) == 0 {
		s.Hosts = p.Hosts
	}
	if len(s.Vars) == 0 {
		s.Vars = p.Vars
	}
	return s
}

// Validate reports every problem of s (after WithPreset), prefixed with
// where it is.
func (s Spec) Validate(where string) error {
	var errs []error
	add := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: "+format, append([]any{where}, args...)...))
	}
	if !nameRE.MatchString(s.Name) {
		add("name %q: lower-case letters, digits, - and _, starting with a letter", s.Name)
	}
	if s.Env != "" && s.File != "" {
		add("give env or file, not both")
	}
	if s.Env == "" && s.File == "" && len(s.Vars) == 0 {
		add("no source: give env or file")
	}
	switch s.Send {
	case SendBearer, SendBasic:
		if s.Header != "" {
			add("header is for send: header only")
		}
	case SendHeader:
		if !headerRE.MatchString(s.Header) {
			add("header %q is not a header name", s.Header)
		}
	default:
		add("send %q: bearer, basic or header", s.Send)
	}
	if len(s.Hosts) == 0 {
		add("no hosts: a secret is bound to at least one host pattern")
	}
	for i, h := range s.Hosts {
		if h == "*" || strings.HasPrefix(h, "*:") {
			add("hosts[%d]: %q binds the secret to every host", i, h)
		} else if err := engine.ValidatePattern(h); err != nil {
			add("hosts[%d]: %w", i, err)
		}
	}
	for i, v := range append([]string{s.Env}, s.Vars...) {
		if v != "" && !varRE.MatchString(v) {
			add("vars[%d]: %q is not a variable name", i-1, v)
		}
	}
	return errors.Join(errs...)
}

// ParseFlag parses --secret: NAME (a preset, or a configured entry) or
// NAME=ENVVAR@HOSTPATTERN[,HOSTPATTERN…] (the value from ENVVAR, the child's
// ENVVAR gets the placeholder; a preset's name keeps its way of sending and
// variables).
func ParseFlag(v string) (Spec, error) {
	name, rest, full := strings.Cut(v, "=")
	if !full {
		return Spec{Name: name}, nil
	}
	env, hosts, ok := strings.Cut(rest, "@")
	if !ok || env == "" || hosts == "" {
		return Spec{}, fmt.Errorf("--secret %q: want NAME or NAME=ENVVAR@HOSTPATTERN[,HOSTPATTERN…]", v)
	}
	s := Spec{Name: name, Env: env, Send: SendBearer, Hosts: strings.Split(hosts, ","), Vars: []string{env}}
	if p, ok := Presets[name]; ok {
		s.Send, s.Header = p.Send, p.Header
		s.Vars = append(slices.Clone(p.Vars), env)
		slices.Sort(s.Vars)
		s.Vars = slices.Compact(s.Vars)
	}
	return s, nil
}

// Merge is the secrets of a run: the configured entries (completed by
// their presets), then each --secret flag, which names a configured entry
// or a preset, or replaces an entry of its name. Every problem is
// reported.
func Merge(configured []Spec, flags []string) ([]Spec, error) {
	byName := map[string]Spec{}
	var order []string
	put := func(s Spec) {
		if _, ok := byName[s.Name]; !ok {
			order = append(order, s.Name)
		}
		byName[s.Name] = s
	}
	var errs []error
	for i, s := range configured {
		s = WithPreset(s)
		if err := s.Validate(fmt.Sprintf("secrets[%d]", i)); err != nil {
			errs = append(errs, err)
			continue
		}
		put(s)
	}
	for _, f := range flags {
		s, err := ParseFlag(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if s.Env == "" { // a name only
			if _, ok := byName[s.Name]; ok {
				continue
			}
			if _, ok := Presets[s.Name]; !ok {
				errs = append(errs, fmt.Errorf("--secret %q: no preset or secrets: entry of that name (presets: %s)", f, strings.Join(slices.Sorted(maps.Keys(Presets)), ", ")))
				continue
			}
			s = WithPreset(s)
		}
		if err := s.Validate("--secret " + s.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		put(s)
	}
	out := make([]Spec, 0, len(order))
	for _, n := range order {
		out = append(out, byName[n])
	}
	return out, errors.Join(errs...)
}
