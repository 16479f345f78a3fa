package transparent

import "github.com/prometheus/client_golang/prometheus"

// metrics are the transparent path's own; the flows' are the proxy's.
type metrics struct {
	udpDropped prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) metrics {
	m := metrics{udpDropped: prometheus.NewCounter(prometheus.CounterOpts{
		Name: "regate_isolate_udp_dropped_total",
		Help: "UDP datagrams of an isolated command dropped (other than DNS), each answered with ICMP port unreachable.",
	})}
	if reg != nil {
		reg.MustRegister(m.udpDropped)
	}
	return m
}
