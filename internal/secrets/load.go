package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/regate/regate/internal/private"
)

// Secret is a loaded secret: its spec, its real value and this run's
// placeholder for it.
type Secret struct {
	Spec
	// Source says where the value came from ("environment variable
	// GH_TOKEN", "file …"), never the value.
	Source      string
	value       string
	placeholder string
	forms       []form // what a scrub replaces
}

// Placeholder is what the command sees instead of the value.
func (s *Secret) Placeholder() string { return s.placeholder }

// Value is the real credential; only the proxy's swap and the child's
// environment scrub use it.
func (s *Secret) Value() string { return s.value }

// maxValue bounds a secret's value.
const maxValue = 16 << 10

// Load reads each spec's value (getenv is regate's own environment) and
// draws its placeholder. Errors name the secret and its source, never the
// value.
func Load(specs []Spec, getenv func(string) string) ([]*Secret, error) {
	var out []*Secret
	var errs []error
	for _, sp := range specs {
		s, err := load(sp, getenv)
		if err != nil {
			errs = append(errs, fmt.Errorf("secret %s: %w", sp.Name, err))
			continue
		}
		out = append(out, s)
	}
	return out, errors.Join(errs...)
}

func load(sp Spec, getenv func(string) string) (*Secret, error) {
	s := &Secret{Spec: sp}
	switch {
	case sp.File != "":
		v, err := readFile(sp.File)
		if err != nil {
			return nil, err
		}
		s.value, s.Source = v, "file "+sp.File
	case sp.Env != "":
		s.value, s.Source = getenv(sp.Env), "environment variable "+sp.Env
	default:
		for _, v := range sp.Vars {
			if s.value = getenv(v); s.value != "" {
				s.Source = "environment variable " + v
				break
			}
		}
		if s.value == "" {
			return nil, fmt.Errorf("none of %s is set", strings.Join(sp.Vars, ", "))
		}
	}
	if s.value == "" {
		return nil, fmt.Errorf("%s is empty", s.Source)
	}
	if err := checkValue(s.value); err != nil {
		return nil, fmt.Errorf("%s: %w", s.Source, err)
	}
	p, err := Placeholder(s.value)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Source, err)
	}
	s.placeholder = p
	s.computeForms()
	return s, nil
}

// checkValue refuses values that could not be sent safely: control
// characters (header injection), spaces, or too long.
func checkValue(v string) error {
	if len(v) > maxValue {
		return fmt.Errorf("the value is longer than %d bytes", maxValue)
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c <= ' ' || c == 0x7f {
			return errors.New("the value contains a space or a control character")
		}
	}
	return nil
}

// readFile reads a secret file that passes the admin token file's checks
// (the user's own, neither readable nor writable by others); one trailing
// newline is dropped.
func readFile(path string) (string, error) {
	b, err := private.ReadFile(path, private.Secret, maxValue+2)
	if err != nil {
		return "", err
	}
	b = bytes.TrimSuffix(bytes.TrimSuffix(b, []byte("\n")), []byte("\r"))
	return string(b), nil
}
