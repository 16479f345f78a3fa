package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"syscall"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/parent"
	"github.com/regate/regate/proxy"
)

// Bounds of the summary, whatever the child does.
const (
	summaryShown     = 20   // destinations printed
	summaryKept      = 1024 // destinations counted one by one; the rest only in total
	summaryReasonMax = 200  // bytes of a reason kept
)

// blockedSummary counts `regate run`'s denied connections (from the
// engine's decision events), the ones audit mode let through that the
// policy denies ("would have blocked"), and its failed ones (allowed, but
// the upstream could not be reached: from the proxy's outcomes), per
// destination and reason.
type blockedSummary struct {
	mu    sync.Mutex
	order []summaryKey // first seen first
	count map[summaryKey]int
	// tunnels are the schemes of the tunnels denied per destination;
	// retried, the destinations a tunnel of the same scheme was denied
	// more than once.
	tunnels map[summaryKey][]string
	retried map[summaryKey]bool
	// audited are the audited tunnels, by client address and
	// destination: the requests found inside one are the same connection
	// (a deny would have stopped the tunnel), not more of them.
	audited map[[2]string]bool
	// beyond summaryKept destinations, connections are only counted
	untracked int
}

type summaryKey struct {
	failed       bool
	audit        bool // allowed in audit mode: the policy denies it
	udp          bool // dropped UDP datagrams, not connections
	inspected    bool // HTTPS requests inside an inspected tunnel
	dest, reason string
}

func newBlockedSummary() *blockedSummary {
	return &blockedSummary{count: map[summaryKey]int{}, tunnels: map[summaryKey][]string{}, retried: map[summaryKey]bool{},
		audited: map[[2]string]bool{}}
}

// observe is the engine observer: it keeps the deny and audit events.
func (s *blockedSummary) observe(ev *engine.Event) {
	if (ev.Allow && !ev.Audit) || ev.Scheme == engine.SchemeUDP { // datagrams are counted by udp
		return
	}
	k := summaryKey{audit: ev.Audit, dest: joinDest(ev.Host, ev.Port), reason: ev.Reason,
		inspected: ev.Scheme == engine.SchemeHTTPS && ev.Method != engine.MethodConnect}
	if ev.Audit && s.insideAudited(ev, k.dest) {
		return
	}
	if s.add(k) && !ev.Audit && ev.Method == engine.MethodConnect && isTunnel(ev.Scheme) {
		s.tunnel(k, ev.Scheme)
	}
}

// insideAudited remembers an audited tunnel, and reports whether an
// audited request is inside one (same client connection, same
// destination). Beyond summaryKept tunnels it starts over: a request then
// counts once more, nothing is lost.
func (s *blockedSummary) insideAudited(ev *engine.Event, dest string) bool {
	if ev.Client == "" {
		return false
	}
	conn := [2]string{ev.Client, dest}
	s.mu.Lock()
	defer s.mu.Unlock()
	if ev.Method != engine.MethodConnect {
		return s.audited[conn]
	}
	if len(s.audited) >= summaryKept {
		clear(s.audited)
	}
	s.audited[conn] = true
	return false
}

// isTunnel reports whether scheme is a tunnel's (method CONNECT; the
// requests inside an inspected one are not), whose refusal clients
// see as a connection error and retry (README, The summary): pip (urllib3
// retries every error of a tunnel's set-up, 5 times with back-off) and
// yarn 1 (tunnel-agent reports any refused CONNECT as ECONNRESET, which
// yarn takes for a lost network and retries 4 times). No answer to a
// refused tunnel stops them; a plain request's 403 is a response, not
// retried.
func isTunnel(scheme string) bool {
	switch scheme {
	case engine.SchemeHTTPS, engine.SchemeSOCKS5, engine.SchemeTCP:
		return true
	}
	return false
}

// tunnel records a denied tunnel of scheme to k's destination; a second
// one of the same scheme marks k retried.
func (s *blockedSummary) tunnel(k summaryKey, scheme string) {
	k.dest, k.reason = clip(k.dest, summaryReasonMax), clip(k.reason, summaryReasonMax)
	s.mu.Lock()
	defer s.mu.Unlock()
	if slices.Contains(s.tunnels[k], scheme) {
		s.retried[k] = true
		return
	}
	s.tunnels[k] = append(s.tunnels[k], scheme)
}

// outcome is the proxy's outcome callback: it keeps the allowed
// connections whose upstream could not be reached (nothing was dialed).
func (s *blockedSummary) outcome(o proxy.Outcome) {
	if !o.Allowed || o.Err == nil || o.Upstream != "" || errors.Is(o.Err, context.Canceled) {
		return
	}
	s.add(summaryKey{failed: true, dest: joinDest(o.Host, o.Port), reason: failure(o.Err)})
}

// udp is the transparent path's callback: each dropped UDP datagram.
func (s *blockedSummary) udp(host string, port int) {
	s.add(summaryKey{udp: true, dest: joinDest(host, port), reason: "UDP is not allowed in the sandbox"})
}

// add counts one connection to k; false when k is beyond the tracked
// destinations.
func (s *blockedSummary) add(k summaryKey) bool {
	k.dest, k.reason = clip(k.dest, summaryReasonMax), clip(k.reason, summaryReasonMax)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.count[k]; !ok {
		if len(s.order) >= summaryKept {
			s.untracked++
			return false
		}
		s.order = append(s.order, k)
	}
	s.count[k]++
	return true
}

// print writes the most frequent destinations, one line each (ties in
// first-seen order), then how many more there were; every string is made
// printable.
func (s *blockedSummary) print(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := slices.Clone(s.order)
	slices.SortStableFunc(keys, func(a, b summaryKey) int { return s.count[b] - s.count[a] })
	for _, k := range keys[:min(len(keys), summaryShown)] {
		n := s.count[k]
		switch {
		case k.failed:
			fmt.Fprintf(w, "regate: %d %s to %s failed — %s\n", n, connections(n), printable(k.dest), printable(k.reason))
		case k.audit && k.inspected:
			fmt.Fprintf(w, "regate: would have blocked %d inspected HTTPS %s to %s — %s\n", n, plural(n, "request"), printable(k.dest), printable(k.reason))
		case k.audit:
			fmt.Fprintf(w, "regate: would have blocked %d %s to %s — %s\n", n, connections(n), printable(k.dest), printable(k.reason))
		case k.udp:
			fmt.Fprintf(w, "regate: blocked %d UDP %s to %s — %s\n", n, plural(n, "packet"), printable(k.dest), printable(k.reason))
		case k.inspected:
			fmt.Fprintf(w, "regate: blocked %d inspected HTTPS %s to %s — %s\n", n, plural(n, "request"), printable(k.dest), printable(k.reason))
		case s.retried[k]:
			fmt.Fprintf(w, "regate: blocked %d %s (the client retried) to %s — %s\n", n, connections(n), printable(k.dest), printable(k.reason))
		default:
			fmt.Fprintf(w, "regate: blocked %d %s to %s — %s\n", n, connections(n), printable(k.dest), printable(k.reason))
		}
	}
	more, conns := 0, s.untracked
	for _, k := range keys[min(len(keys), summaryShown):] {
		more++
		conns += s.count[k]
	}
	switch {
	case s.untracked > 0:
		fmt.Fprintf(w, "regate: and at least %d more destinations, %d %s\n", more+1, conns, connections(conns))
	case more > 0:
		fmt.Fprintf(w, "regate: and %d more destinations, %d %s\n", more, conns, connections(conns))
	}
}

func connections(n int) string { return plural(n, "connection") }

func plural(n int, noun string) string {
	if n == 1 {
		return noun
	}
	return noun + "s"
}

func joinDest(host string, port int) string { return net.JoinHostPort(host, strconv.Itoa(port)) }

// failure names why an allowed connection's upstream could not be reached.
func failure(err error) string {
	var dns *net.DNSError
	var ne net.Error
	var pe *parent.Error
	switch {
	case errors.As(err, &pe): // "upstream proxy refused: 403 Forbidden"
		return pe.Error()
	case errors.Is(err, proxy.ErrClientHandshake):
		return "the client's TLS handshake failed on an inspected host (does it trust regate's CA, or pin certificates?)"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "upstream refused"
	case errors.As(err, &dns):
		return "upstream name not found"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "upstream timed out"
	}
	return "upstream unreachable: " + err.Error()
}
