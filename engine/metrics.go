package engine

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// collectors are the engine's Prometheus collectors (README, Metrics).
type collectors struct {
	decisions          *prometheus.CounterVec
	duration           prometheus.Histogram
	reloads            *prometheus.CounterVec
	revision           *prometheus.GaugeVec
	logDropped         prometheus.Counter
	logErrors          prometheus.Counter
	logWriteDropped    prometheus.Counter
	subscribersDropped prometheus.Counter
	cacheHits          prometheus.Counter
	cacheMisses        prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*collectors, error) {
	m := &collectors{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regate_decisions_total",
			Help: "Decisions by result (allow, deny, audit) and reason class.",
		}, []string{"result", "reason_class"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "regate_decision_duration_seconds",
			Help:    "Time to evaluate one decision.",
			Buckets: []float64{5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 1e-3, 1e-2, 1e-1},
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regate_policy_reloads_total",
			Help: "Policy reloads by result (success, failure).",
		}, []string{"result"}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "regate_policy_revision_info",
			Help: "1 for the revision of each active bundle.",
		}, []string{"bundle", "revision"}),
		logDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regate_decision_log_dropped_total",
			Help: "Decision events dropped because the log queue was full.",
		}),
		logErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regate_decision_log_errors_total",
			Help: "Failed decision-log writes, and events that could not be encoded or handed to OPA's decision-log plugin.",
		}),
		logWriteDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regate_decision_log_write_dropped_total",
			Help: "Decision events lost from the JSON-lines log because a write failed (the other sinks still received them).",
		}),
		subscribersDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regate_decision_stream_dropped_total",
			Help: "Decision stream subscribers dropped for reading too slowly.",
		}),
		cacheHits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regate_decision_cache_hits_total",
			Help: "Decisions served from the decision cache, or by an identical decision's evaluation in flight (no evaluation of their own).",
		}),
		cacheMisses: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regate_decision_cache_misses_total",
			Help: "Decisions of a cacheable policy evaluated because the decision cache had no answer.",
		}),
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.decisions, m.duration, m.reloads, m.revision, m.logDropped, m.logErrors, m.logWriteDropped, m.subscribersDropped, m.cacheHits, m.cacheMisses} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering engine metrics: %w", err)
			}
		}
	}
	return m, nil
}

// observe counts one decision.
func (m *collectors) observe(d Decision, took time.Duration) {
	result := "deny"
	switch {
	case d.Audit:
		result = "audit"
	case d.Allow:
		result = "allow"
	}
	m.decisions.WithLabelValues(result, reasonClass(d)).Inc()
	if took > 0 {
		m.duration.Observe(took.Seconds())
	}
}

// reasonClass is a bounded label: the rule's kind, not the rule itself.
func reasonClass(d Decision) string {
	r := d.Rule
	for i := 0; i < len(r); i++ {
		if r[i] == ':' {
			r = r[:i]
			break
		}
	}
	switch r {
	case "allow", "deny", "attempt.allow", "attempt.deny", "methods", "default", "engine", "ssrf":
		return r
	case "":
		return "unspecified"
	default:
		return "policy"
	}
}
