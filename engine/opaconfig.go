package engine

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/util"
)

// sinkPluginName is the OPA plugin through which OPA's decision-log plugin
// (masking, dropping, upload) hands every event to regate's own sinks.
const sinkPluginName = "regate_decisions"

// unhonoured are OPA's configuration keys that regate accepts in OPA's
// schema but cannot act on; each is refused, naming why, rather than
// accepted and ignored.
var unhonoured = map[string]string{
	"distributed_tracing":            "regate exports no OpenTelemetry traces",
	"storage":                        "regate keeps policy and data in memory (OPA's disk store is not used)",
	"metrics_export":                 "regate exports no OpenTelemetry metrics (its metrics are on the admin API's /metrics)",
	"default_decision":               "the admin API serves no POST / (OPA's default-decision route)",
	"default_authorization_decision": "the admin API authenticates by its socket or bearer token, not by OPA's authorization policy",
}

// unhonouredServer are the keys of OPA's `server` section regate cannot
// act on (`decoding` and `encoding` apply to the admin API's OPA routes).
var unhonouredServer = map[string]string{
	"metrics":       "the admin API's /metrics is regate's registry",
	"logger_plugin": "the admin API logs requests through regate's logger",
}

// reservedLabels are labels OPA sets itself and replaces when configured
// (its configuration policy overwrites them): refused here rather than
// silently replaced.
var reservedLabels = map[string]string{
	"id":      "each regate process has its own (a UUID, kept under persistence_directory when set); OPA replaces a configured one",
	"version": "OPA sets it to its own version; OPA replaces a configured one",
}

// opaOptions is what regate adds to or takes from the user's OPA
// configuration.
type opaOptions struct {
	version string
	// offline drops status reporting and decision-log upload.
	offline bool
}

// buildOPAConfig merges what regate needs into the user's OPA configuration:
// the sink plugin, decision_logs routed to it, and the app label. It refuses
// keys regate cannot honour, and reports whether bundles are configured
// (which replaces the embedded default).
func buildOPAConfig(raw []byte, o opaOptions) ([]byte, bool, error) {
	cfg := map[string]any{}
	if len(raw) > 0 {
		if err := util.Unmarshal(raw, &cfg); err != nil {
			return nil, false, fmt.Errorf("parsing OPA configuration: %w", err)
		}
		if cfg == nil {
			cfg = map[string]any{}
		}
	}
	var errs []error
	for _, key := range slices.Sorted(maps.Keys(unhonoured)) {
		if _, ok := cfg[key]; ok {
			errs = append(errs, fmt.Errorf("opa.%s: not supported: %s; remove the key", key, unhonoured[key]))
		}
	}
	if server, ok := cfg["server"].(map[string]any); ok {
		for _, key := range slices.Sorted(maps.Keys(unhonouredServer)) {
			if _, ok := server[key]; ok {
				errs = append(errs, fmt.Errorf("opa.server.%s: not supported: %s; remove the key", key, unhonouredServer[key]))
			}
		}
	}
	if labels, ok := cfg["labels"].(map[string]any); ok {
		for _, key := range slices.Sorted(maps.Keys(reservedLabels)) {
			if _, ok := labels[key]; ok {
				errs = append(errs, fmt.Errorf("opa.labels.%s: cannot be configured: %s", key, reservedLabels[key]))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, false, err
	}
	if o.offline {
		delete(cfg, "status")
		delete(cfg, "decision_logs")
	}
	pluginsCfg, err := object(cfg, "plugins")
	if err != nil {
		return nil, false, err
	}
	pluginsCfg[sinkPluginName] = map[string]any{}
	dl, err := object(cfg, "decision_logs")
	if err != nil {
		return nil, false, err
	}
	if p, ok := dl["plugin"]; ok && p != sinkPluginName {
		return nil, false, fmt.Errorf("opa.decision_logs.plugin: %v: regate routes decision logs through its own plugin; remove the key", p)
	}
	dl["plugin"] = sinkPluginName
	labels, err := object(cfg, "labels")
	if err != nil {
		return nil, false, err
	}
	labels["app"] = "regate"
	if o.version != "" {
		labels["regate_version"] = o.version
	}
	remote := false
	if b, ok := cfg["bundles"].(map[string]any); ok && len(b) > 0 {
		remote = true
	}
	if _, ok := cfg["bundle"]; ok {
		remote = true
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		return nil, false, fmt.Errorf("encoding OPA configuration: %w", err)
	}
	return out, remote, nil
}

// object returns cfg[key] as an object, creating it when absent.
func object(cfg map[string]any, key string) (map[string]any, error) {
	switch v := cfg[key].(type) {
	case nil:
		m := map[string]any{}
		cfg[key] = m
		return m, nil
	case map[string]any:
		return v, nil
	default:
		return nil, fmt.Errorf("opa.%s: must be an object, not %T", key, v)
	}
}

// opaLogsConfigured reports whether OPA's decision_logs configuration asks
// for anything beyond handing events to regate (upload, console).
func opaLogsConfigured(raw []byte) bool {
	var dl map[string]any
	if err := json.Unmarshal(raw, &dl); err != nil {
		return true
	}
	for k, v := range dl {
		switch k {
		case "plugin", "request_context":
		case "console":
			if v == true {
				return true
			}
		default:
			return true
		}
	}
	return false
}
