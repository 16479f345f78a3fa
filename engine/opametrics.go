package engine

import (
	"encoding/json"

	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// promMetrics is the metrics provider OPA's plugins get, as `opa run
// --server` gives them its Prometheus provider: OPA's own timers and
// counters, plus every family of regate's registry, so that the status
// report's metrics.prometheus carries them in OPA's encoding.
type promMetrics struct {
	metrics.Metrics
	g prometheus.Gatherer
}

// opaMetrics is the provider for OPA's plugins: nil without a Gatherer
// (OPA's status then reports no metrics).
func (e *Engine) opaMetrics() metrics.Metrics {
	if e.cfg.Gatherer == nil {
		return nil
	}
	return promMetrics{Metrics: metrics.New(), g: e.cfg.Gatherer}
}

// Info names the provider as OPA's: its status reports metrics.prometheus.
func (promMetrics) Info() metrics.Info { return metrics.Info{Name: "prometheus"} }

// All is OPA's metrics and every gathered Prometheus family.
func (m promMetrics) All() map[string]any {
	all := m.Metrics.All()
	families, _ := m.g.Gather() // what could be gathered is still reported
	for _, f := range families {
		all[f.GetName()] = protoJSON{f}
	}
	return all
}

func (m promMetrics) MarshalJSON() ([]byte, error) { return json.Marshal(m.All()) }

// protoJSON encodes a metric family as OPA's status does.
type protoJSON struct{ m proto.Message }

func (p protoJSON) MarshalJSON() ([]byte, error) { return protojson.Marshal(p.m) }
