// Package transparent is the source of the proxy pipeline for the TCP
// flows of an isolated command that ignores the proxy variables: the TUN
// link's user-space stack hands each flow over before its handshake, the
// fake-IP pool names its destination, and proxy.Handle decides, dials,
// answers (SYN-ACK or RST) and relays it like any tunnel. UDP other than
// DNS is dropped, and each destination it was sent to is a deny event.
package transparent

import (
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Listener is the name of this source, as input.client.listener.
const Listener = "transparent"

// RuleUDP is the rule of the deny events of dropped UDP.
const RuleUDP = "isolate:udp"

// DefaultHTTPPorts are the ports whose denied flows are answered with the
// proxy's 403 when the command sends an HTTP request.
var DefaultHTTPPorts = []int{80, 8080}

// Options are what the transparent path does besides deciding flows.
type Options struct {
	// HTTPPorts are the ports where a denied flow is accepted to answer an
	// HTTP request with the proxy's 403 (a program shows why); on the
	// others a deny is a RST at once ("connection refused"). Nil is
	// DefaultHTTPPorts.
	HTTPPorts []int
	// DNSPool is how many names per address family the fake-IP DNS maps
	// at once; 0 is fakedns.DefaultMax.
	DNSPool int
	// OnUDP is told of each dropped UDP datagram: the destination as the
	// deny events name it (the name behind a fake address) and its port.
	OnUDP func(host string, port int)
	// Registerer receives the path's metrics; nil does not register.
	Registerer prometheus.Registerer
}

// Bounds of the deny events of dropped UDP, whatever the command sends.
const (
	udpWindow    = time.Minute // a destination's next event, while it keeps sending
	udpEventsMax = 64          // events per window, all destinations together
)

// udpDrops decides which dropped datagrams become deny events: the first
// to each destination, then one per window while it keeps sending, and no
// more than udpEventsMax per window in all (a flood of destinations
// cannot fill the decision log; the metric still counts every datagram).
type udpDrops struct {
	mu          sync.Mutex
	last        map[netip.AddrPort]time.Time // each destination's last event
	windowStart time.Time
	events      int
}

func newUDPDrops() *udpDrops { return &udpDrops{last: map[netip.AddrPort]time.Time{}} }

// event reports whether the datagram to dst at now is logged.
func (u *udpDrops) event(dst netip.AddrPort, now time.Time) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if now.Sub(u.windowStart) >= udpWindow {
		u.windowStart, u.events = now, 0
		for d, t := range u.last {
			if now.Sub(t) >= udpWindow {
				delete(u.last, d)
			}
		}
	}
	if t, ok := u.last[dst]; ok && now.Sub(t) < udpWindow {
		return false
	}
	if u.events >= udpEventsMax { // so no more than 2×udpEventsMax are remembered
		return false
	}
	u.events++
	u.last[dst] = now
	return true
}
