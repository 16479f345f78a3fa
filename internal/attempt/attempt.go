// Package attempt keeps the identities of sandboxed attempts: who may use the
// proxy, with which token, and what was registered for them.
package attempt

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Sentinel errors returned by Registry.Authenticate.
var (
	ErrUnknown  = errors.New("unknown attempt")
	ErrBadToken = errors.New("wrong attempt token")
	ErrExpired  = errors.New("attempt expired")
)

// ErrDuplicate is returned by Add for an id that is already registered.
var ErrDuplicate = errors.New("attempt already registered")

// Attempt is one registered identity: the proxy-auth user name (ID), its
// secret (Token), and what the policy sees about it.
type Attempt struct {
	ID     string
	Token  string
	Labels map[string]string
	Allow  []string
	Deny   []string
	// Secrets are the names of the secrets kept outside the sandbox the
	// attempt holds placeholders for.
	Secrets []string
	// Audit is report-only mode for this attempt: what the policy denies
	// is allowed and logged as audit.
	Audit   bool
	Created time.Time
	Expires time.Time // zero: never
}

// Expired reports whether the attempt has a non-zero expiry in the past.
func (a Attempt) Expired(now time.Time) bool {
	return !a.Expires.IsZero() && now.After(a.Expires)
}

// clone returns a deep copy, so callers never share maps or slices with the
// registry.
func (a Attempt) clone() Attempt {
	a.Labels = maps.Clone(a.Labels)
	a.Allow = slices.Clone(a.Allow)
	a.Deny = slices.Clone(a.Deny)
	a.Secrets = slices.Clone(a.Secrets)
	return a
}

// Registry is a concurrency-safe in-memory set of attempts.
type Registry struct {
	mu       sync.RWMutex
	attempts map[string]Attempt
	now      func() time.Time
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{attempts: make(map[string]Attempt), now: time.Now}
}

// Add registers a. An empty id or one already registered is an error.
func (r *Registry) Add(a Attempt) error {
	if a.ID == "" {
		return errors.New("adding attempt: empty id")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.attempts[a.ID]; ok {
		return fmt.Errorf("adding attempt %q: %w", a.ID, ErrDuplicate)
	}
	if a.Created.IsZero() {
		a.Created = r.now()
	}
	r.attempts[a.ID] = a.clone()
	return nil
}

// Remove deletes the attempt and reports whether it was registered.
func (r *Registry) Remove(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.attempts[id]
	delete(r.attempts, id)
	return ok
}

// Sweep removes every attempt expired at now and returns their ids.
func (r *Registry) Sweep(now time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var gone []string
	for id, a := range r.attempts {
		if a.Expired(now) {
			delete(r.attempts, id)
			gone = append(gone, id)
		}
	}
	slices.Sort(gone)
	return gone
}

// Get returns a copy of the attempt registered under id.
func (r *Registry) Get(id string) (Attempt, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.attempts[id]
	if !ok {
		return Attempt{}, false
	}
	return a.clone(), true
}

// List returns copies of every attempt, ordered by id.
func (r *Registry) List() []Attempt {
	r.mu.RLock()
	out := make([]Attempt, 0, len(r.attempts))
	for _, a := range r.attempts {
		out = append(out, a.clone())
	}
	r.mu.RUnlock()
	slices.SortFunc(out, func(a, b Attempt) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out
}

// Len returns the number of registered attempts.
func (r *Registry) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.attempts)
}

// Authenticate checks token against the attempt registered under id, in
// constant time. It returns ErrUnknown, ErrBadToken or ErrExpired (wrapped).
func (r *Registry) Authenticate(id, token string) (Attempt, error) {
	a, ok := r.Get(id)
	if !ok {
		return Attempt{}, fmt.Errorf("authenticating %q: %w", id, ErrUnknown)
	}
	if a.Token == "" || subtle.ConstantTimeCompare([]byte(a.Token), []byte(token)) != 1 {
		return Attempt{}, fmt.Errorf("authenticating %q: %w", id, ErrBadToken)
	}
	if a.Expired(r.now()) {
		return Attempt{}, fmt.Errorf("authenticating %q: %w", id, ErrExpired)
	}
	return a, nil
}

// NewID returns a fresh random attempt id (128 bits, hex).
func NewID() string { return random128() }

// NewToken returns a fresh random token (128 bits, hex).
func NewToken() string { return random128() }

func random128() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	return hex.EncodeToString(b[:])
}
