package admin

import (
	"context"
	"fmt"
	"net/http"

	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/server/decoding"
	"github.com/open-policy-agent/opa/v1/server/handlers"
)

// opaLimits are the request body limits of OPA's routes (/v1/data,
// /v1/policies): OPA's server.decoding when configured, which OPA's own
// handler then enforces; else regate's smaller per-route defaults,
// answered the way OPA answers (400, invalid_parameter).
type opaLimits struct {
	configured bool
	gzip       int64 // OPA's server.decoding.gzip.max_length (or default)
}

// decodingLimits reads OPA's server.decoding from the manager's
// configuration, with OPA's own parser and defaults.
func decodingLimits(mgr *plugins.Manager) (*opaLimits, error) {
	var raw []byte
	if c := mgr.GetConfig(); c.Server != nil {
		raw = c.Server.Decoding
	}
	cfg, err := decoding.NewConfigBuilder().WithBytes(raw).ParseWithContext(context.Background())
	if err != nil {
		return nil, fmt.Errorf("opa.server.decoding: %w", err)
	}
	return &opaLimits{configured: len(raw) > 0, gzip: *cfg.Gzip.MaxLength}, nil
}

// handler wraps next (OPA's REST server, which applies its configured
// limits itself) with the default limit def unless OPA's are configured.
func (l *opaLimits) handler(def int64, next http.Handler) http.Handler {
	if l.configured {
		return next
	}
	return handlers.DecodingLimitsHandler(next, def, l.gzip)
}
