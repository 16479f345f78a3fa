package transparent

import (
	"net/netip"
	"testing"
	"time"
)

// TestUDPDropEvents: the first datagram to each destination is an event,
// then one per window while it keeps sending; a flood of destinations
// gets udpEventsMax events per window and the memory stays bounded.
func TestUDPDropEvents(t *testing.T) {
	u := newUDPDrops()
	t0 := time.Unix(1_000_000, 0)
	a := netip.MustParseAddrPort("8.8.8.8:443")
	b := netip.MustParseAddrPort("8.8.4.4:443")
	steps := []struct {
		dst  netip.AddrPort
		at   time.Duration
		want bool
	}{
		{a, 0, true},
		{a, time.Second, false},
		{b, 2 * time.Second, true},
		{a, udpWindow - time.Second, false},
		{a, udpWindow, true},
		{b, udpWindow + time.Second, false},
		{b, udpWindow + 2*time.Second, true},
	}
	for i, s := range steps {
		if got := u.event(s.dst, t0.Add(s.at)); got != s.want {
			t.Errorf("step %d: %s at %v: event = %v, want %v", i, s.dst, s.at, got, s.want)
		}
	}

	flood := newUDPDrops()
	for round := range 3 {
		now := t0.Add(time.Duration(round) * udpWindow)
		events := 0
		for i := range 100_000 {
			dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), 53)
			if flood.event(dst, now.Add(time.Duration(i)*time.Microsecond)) {
				events++
			}
		}
		if events != udpEventsMax {
			t.Errorf("round %d: %d events for 100000 destinations, want %d", round, events, udpEventsMax)
		}
		if n := len(flood.last); n > 2*udpEventsMax {
			t.Errorf("round %d: %d destinations remembered, want at most %d", round, n, 2*udpEventsMax)
		}
	}
}
