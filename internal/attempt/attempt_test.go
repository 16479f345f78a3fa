package attempt

import (
	"errors"
	"sync"
	"testing"
	"time"
)

func TestRegistryAddGetRemove(t *testing.T) {
	r := NewRegistry()
	a := Attempt{ID: "a1", Token: "t1", Labels: map[string]string{"team": "x"}, Allow: []string{"example.com"}}
	if err := r.Add(a); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := r.Add(a); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second Add: got %v, want ErrDuplicate", err)
	}
	if err := r.Add(Attempt{}); err == nil {
		t.Fatal("Add with empty id: want error")
	}
	got, ok := r.Get("a1")
	if !ok || got.Token != "t1" || got.Labels["team"] != "x" || got.Created.IsZero() {
		t.Fatalf("Get: %+v %v", got, ok)
	}
	got.Labels["team"] = "mutated"
	got.Allow[0] = "mutated"
	again, _ := r.Get("a1")
	if again.Labels["team"] != "x" || again.Allow[0] != "example.com" {
		t.Fatalf("Get shares state with the registry: %+v", again)
	}
	if r.Len() != 1 || len(r.List()) != 1 {
		t.Fatalf("Len/List: %d %d", r.Len(), len(r.List()))
	}
	if !r.Remove("a1") || r.Remove("a1") {
		t.Fatal("Remove: want true then false")
	}
	if _, ok := r.Get("a1"); ok {
		t.Fatal("Get after Remove: found")
	}
}

func TestRegistryList(t *testing.T) {
	r := NewRegistry()
	for _, id := range []string{"c", "a", "b"} {
		if err := r.Add(Attempt{ID: id, Token: id}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	for _, a := range r.List() {
		ids = append(ids, a.ID)
	}
	if len(ids) != 3 || ids[0] != "a" || ids[1] != "b" || ids[2] != "c" {
		t.Fatalf("List order: %v", ids)
	}
}

func TestAuthenticate(t *testing.T) {
	r := NewRegistry()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	r.now = func() time.Time { return now }
	mustAdd(t, r, Attempt{ID: "ok", Token: "secret"})
	mustAdd(t, r, Attempt{ID: "old", Token: "secret", Expires: now.Add(-time.Second)})
	mustAdd(t, r, Attempt{ID: "later", Token: "secret", Expires: now.Add(time.Hour)})
	mustAdd(t, r, Attempt{ID: "notoken"})
	tests := []struct {
		name, id, token string
		want            error
	}{
		{"valid", "ok", "secret", nil},
		{"valid with future expiry", "later", "secret", nil},
		{"wrong token", "ok", "nope", ErrBadToken},
		{"token prefix", "ok", "secre", ErrBadToken},
		{"empty token", "ok", "", ErrBadToken},
		{"unknown id", "ghost", "secret", ErrUnknown},
		{"expired", "old", "secret", ErrExpired},
		{"registered without token never authenticates", "notoken", "", ErrBadToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, err := r.Authenticate(tc.id, tc.token)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Authenticate(%q, %q) = %v, want %v", tc.id, tc.token, err, tc.want)
			}
			if tc.want == nil && a.ID != tc.id {
				t.Fatalf("Authenticate returned attempt %q", a.ID)
			}
		})
	}
}

func TestNewIDAndToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		for _, s := range []string{NewID(), NewToken()} {
			if len(s) != 32 {
				t.Fatalf("length %d, want 32 hex digits: %q", len(s), s)
			}
			if seen[s] {
				t.Fatalf("duplicate %q", s)
			}
			seen[s] = true
		}
	}
}

func TestRegistryConcurrent(t *testing.T) {
	r := NewRegistry()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			id := string(rune('a' + i))
			for range 100 {
				_ = r.Add(Attempt{ID: id, Token: "t"})
				_, _ = r.Authenticate(id, "t")
				_ = r.List()
				r.Remove(id)
			}
		})
	}
	wg.Wait()
	if r.Len() != 0 {
		t.Fatalf("Len = %d after all removes", r.Len())
	}
}

func mustAdd(t *testing.T, r *Registry, a Attempt) {
	t.Helper()
	if err := r.Add(a); err != nil {
		t.Fatal(err)
	}
}

func TestSweep(t *testing.T) {
	r := NewRegistry()
	now := time.Now()
	for _, a := range []Attempt{
		{ID: "expired", Token: "t", Expires: now.Add(-time.Second)},
		{ID: "live", Token: "t", Expires: now.Add(time.Hour)},
		{ID: "forever", Token: "t"},
	} {
		if err := r.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	if gone := r.Sweep(now); len(gone) != 1 || gone[0] != "expired" {
		t.Fatalf("Sweep = %v, want [expired]", gone)
	}
	if r.Len() != 2 {
		t.Fatalf("Len after Sweep = %d, want 2", r.Len())
	}
}
