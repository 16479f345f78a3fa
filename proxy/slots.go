package proxy

import (
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
)

// slots hands out tunnel slots: MaxTunnels in all, and a share of them per
// client, so that one client holding idle tunnels cannot take every slot.
// A client is its attempt, or its address when it is anonymous.
type slots struct {
	max, perClient int

	open   atomic.Int64 // all open tunnels, for ActiveTunnels
	mu     sync.Mutex
	shares map[string]int
}

func newSlots(max, perClient int) *slots {
	return &slots{max: max, perClient: perClient, shares: map[string]int{}}
}

// acquire takes a slot for the client of f; on refusal it says which
// limit was hit.
func (s *slots) acquire(f *flow) (release func(), refused string) {
	key := shareKey(f)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case int(s.open.Load()) >= s.max:
		return nil, fmt.Sprintf("too many open tunnels (proxy.max_tunnels %d)", s.max)
	case s.shares[key] >= s.perClient:
		return nil, fmt.Sprintf("too many open tunnels for %s (proxy.max_tunnels_per_client %d)", key, s.perClient)
	}
	s.open.Add(1)
	s.shares[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.open.Add(-1)
			if s.shares[key]--; s.shares[key] <= 0 {
				delete(s.shares, key)
			}
		})
	}, ""
}

// shareKey names the client whose share a flow takes.
func shareKey(f *flow) string {
	if f.in.AttemptID != "" {
		return "attempt " + f.in.AttemptID
	}
	if ap, err := netip.ParseAddrPort(f.in.Client.Addr); err == nil {
		return "client " + ap.Addr().Unmap().String()
	}
	return "client " + f.in.Client.Addr
}
