package admin

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/regate/regate/internal/attempt"
)

// metrics are the admin API's own collectors (README, Metrics).
type metrics struct {
	requests *prometheus.CounterVec
	expired  prometheus.Counter
	attempts prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, attempts *attempt.Registry) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "regate_admin_requests_total",
			Help: "Admin API requests by route and status code.",
		}, []string{"route", "code"}),
		expired: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "regate_attempts_expired_total",
			Help: "Expired attempts removed by the sweeper.",
		}),
		attempts: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "regate_attempts_registered",
			Help: "Attempts currently registered.",
		}, func() float64 { return float64(attempts.Len()) }),
	}
	if reg == nil {
		return m, nil
	}
	var errs []error
	for _, c := range []prometheus.Collector{m.requests, m.expired, m.attempts} {
		if err := reg.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("registering metrics: %w", err)
	}
	return m, nil
}

// metricsHandler serves the gatherer in Prometheus' text format (or
// OpenMetrics when asked).
func (s *Server) metricsHandler() http.Handler {
	return promhttp.HandlerFor(s.cfg.Gatherer, promhttp.HandlerOpts{
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// decisionCounts sums regate_decisions_total by result (allow, deny,
// audit) from the gatherer.
func (s *Server) decisionCounts() map[string]float64 {
	out := map[string]float64{}
	families, _ := s.cfg.Gatherer.Gather() // partial results on error are fine here
	for _, f := range families {
		if f.GetName() != "regate_decisions_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

// instrument counts each request by the route pattern it matched (a
// bounded set) and status, and logs every change at info, without bodies.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		code := sw.status
		if code == 0 {
			code = http.StatusOK
		}
		route := r.Pattern
		if route == "" {
			route = "unmatched"
		}
		s.m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			s.log.Info("admin change", "method", r.Method, "path", r.URL.Path, "status", code)
		}
	})
}

// statusWriter records the status; Unwrap keeps Flush and deadlines
// reachable through http.ResponseController.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets handlers that only know http.Flusher stream.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
