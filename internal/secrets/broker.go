package secrets

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// Broker hands out the secrets' placeholders: to the one command of a run,
// or to each attempt registered with serve's admin API that asks for them
// (each gets placeholders of its own, worthless to the others). A nil
// *Broker has no secrets.
type Broker struct {
	all *Set // every loaded secret: the real values to look for and scrub
	// def is the grant of a flow that has none of its own: the run's set;
	// nil under serve, where only the attempts granted secrets have any.
	def *Set

	mu     sync.RWMutex
	grants map[string]*Set // attempt id → its secrets
}

// ForRun is the broker of regate run: every flow is the command's, and
// uses set.
func ForRun(set *Set) *Broker {
	if set == nil {
		return nil
	}
	return &Broker{all: set, def: set, grants: map[string]*Set{}}
}

// ForServe is the broker of regate serve: the secrets are loaded, and an
// attempt gets placeholders for the ones it is granted (Grant).
func ForServe(set *Set) *Broker {
	if set == nil {
		return nil
	}
	return &Broker{all: set, grants: map[string]*Set{}}
}

// All is every loaded secret.
func (b *Broker) All() *Set {
	if b == nil {
		return nil
	}
	return b.all
}

// For is the set of the flows of attempt id: its grant, else the run's
// set (nil under serve).
func (b *Broker) For(id string) *Set {
	if b == nil {
		return nil
	}
	b.mu.RLock()
	s, ok := b.grants[id]
	b.mu.RUnlock()
	if ok {
		return s
	}
	return b.def
}

// Grant gives attempt id fresh placeholders for the named secrets and
// returns the variables that carry them. An unknown name is an error that
// lists the loaded ones; granting twice replaces the first grant.
func (b *Broker) Grant(id string, names []string) (map[string]string, error) {
	if len(names) == 0 {
		return nil, nil
	}
	if b == nil {
		return nil, fmt.Errorf("secrets: none is loaded (configure secrets: entries, or --secret)")
	}
	var picked []*Secret
	for _, n := range names {
		i := slices.IndexFunc(b.all.secrets, func(s *Secret) bool { return s.Name == n })
		if i < 0 {
			return nil, fmt.Errorf("secrets: %q is not loaded (loaded: %s)", n, strings.Join(b.names(), ", "))
		}
		sec, err := b.all.secrets[i].reissue()
		if err != nil {
			return nil, fmt.Errorf("secret %s: %w", n, err)
		}
		if !slices.ContainsFunc(picked, func(s *Secret) bool { return s.Name == n }) {
			picked = append(picked, sec)
		}
	}
	set := NewSet(picked)
	env := map[string]string{}
	for _, sec := range picked {
		for _, v := range sec.Vars {
			env[v] = sec.placeholder
		}
	}
	b.mu.Lock()
	b.grants[id] = set
	b.mu.Unlock()
	return env, nil
}

// Revoke forgets attempt id's grant: its placeholders are never swapped
// again.
func (b *Broker) Revoke(id string) {
	if b == nil {
		return
	}
	b.mu.Lock()
	delete(b.grants, id)
	b.mu.Unlock()
}

func (b *Broker) names() []string {
	var out []string
	for _, s := range b.all.secrets {
		out = append(out, s.Name)
	}
	return out
}

// reissue is sec with a new placeholder (and its forms), sharing the
// value.
func (sec *Secret) reissue() (*Secret, error) {
	ph, err := Placeholder(sec.value)
	if err != nil {
		return nil, err
	}
	out := &Secret{Spec: sec.Spec, Source: sec.Source, value: sec.value, placeholder: ph}
	out.computeForms()
	return out, nil
}
