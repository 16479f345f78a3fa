package proxy

import (
	"sync"
	"time"
)

// authLogInterval bounds how often authentication refusals are logged.
const authLogInterval = time.Second

// authRefused records an authentication refusal (407 / RFC 1929 failure):
// counted by listener, and logged at info level at most once per
// authLogInterval, with how many were not logged since.
func (p *Proxy) authRefused(listener, client string, err error) {
	p.m.authFailures.WithLabelValues(listener).Inc()
	if n, ok := p.authLog.allow(time.Now()); ok {
		p.log.Info("proxy authentication refused", "listener", listener, "client", client, "reason", err, "not_logged_since", n)
	}
}

// sometimes lets one event through per interval and counts the others.
type sometimes struct {
	interval time.Duration
	mu       sync.Mutex
	last     time.Time
	skipped  int
}

// allow reports whether the event at now is to be logged, with how many
// were skipped before it.
func (s *sometimes) allow(now time.Time) (skipped int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.last.IsZero() && now.Sub(s.last) < s.interval {
		s.skipped++
		return 0, false
	}
	skipped, s.skipped, s.last = s.skipped, 0, now
	return skipped, true
}
