package main

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"

	"github.com/regate/regate/engine"
)

// blockedSummary counts the denied connections per destination and reason,
// fed by the engine's decision events.
type blockedSummary struct {
	mu    sync.Mutex
	order []blockedKey
	count map[blockedKey]int
}

type blockedKey struct{ dest, reason string }

func newBlockedSummary() *blockedSummary {
	return &blockedSummary{count: map[blockedKey]int{}}
}

// observe is the engine observer: it keeps the deny events.
func (s *blockedSummary) observe(ev *engine.Event) {
	if ev.Allow {
		return
	}
	k := blockedKey{dest: net.JoinHostPort(ev.Host, strconv.Itoa(ev.Port)), reason: ev.Reason}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.count[k] == 0 {
		s.order = append(s.order, k)
	}
	s.count[k]++
}

// print writes one line per destination and reason, in first-seen order.
func (s *blockedSummary) print(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range s.order {
		n := s.count[k]
		noun := "connections"
		if n == 1 {
			noun = "connection"
		}
		fmt.Fprintf(w, "regate: blocked %d %s to %s — %s\n", n, noun, k.dest, k.reason)
	}
}
