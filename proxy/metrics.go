package proxy

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the proxy's collectors; they exist (unregistered) even when
// Config.Registerer is nil so that callers never check.
type metrics struct {
	active       *prometheus.GaugeVec
	bytes        *prometheus.CounterVec
	dialErrors   *prometheus.CounterVec
	ssrf         *prometheus.CounterVec
	ownDenies    *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	secretSwaps  *prometheus.CounterVec
}

func newMetrics() *metrics {
	return &metrics{
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "regate_connections_active",
			Help: "Client connections currently open, by listener.",
		}, []string{"listener"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regate_tunnel_bytes_total",
			Help: "Bytes relayed, by direction (up: client to upstream, down: upstream to client).",
		}, []string{"direction"}),
		dialErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regate_upstream_dial_errors_total",
			Help: "Failed upstream resolutions and dials, by class (dns, refused, timeout, other).",
		}, []string{"class"}),
		secretSwaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regate_secret_swaps_total",
			Help: "Requests to a secret's hosts that regate put the secret's real value into, by secret.",
		}, []string{"secret"}),
		ssrf: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regate_ssrf_blocks_total",
			Help: "Allowed connections refused by the SSRF guard, by address class.",
		}, []string{"class"}),
		ownDenies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regate_proxy_denies_total",
			Help: "Connections the proxy denied itself after the policy allowed them (SSRF guard, TLS check, tunnel limit), by rule.",
		}, []string{"rule"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regate_proxy_auth_failures_total",
			Help: "Clients refused for their proxy credentials (407, SOCKS5 authentication failure), by listener.",
		}, []string{"listener"}),
	}
}

// register adds every collector to reg; nil registers nothing.
func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.active, m.bytes, m.dialErrors, m.ssrf, m.ownDenies, m.authFailures, m.secretSwaps} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	return nil
}
