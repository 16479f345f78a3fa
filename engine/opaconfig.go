package engine

import (
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/util"
)

// sinkPluginName is the OPA plugin through which OPA's decision-log plugin
// (masking, dropping, upload) hands every event to regate's own sinks.
const sinkPluginName = "regate_decisions"

// buildOPAConfig merges what regate needs into the user's OPA configuration:
// the sink plugin, decision_logs routed to it, and the app label. It reports
// whether bundles are configured (which replaces the embedded default).
func buildOPAConfig(raw []byte, id, version string) ([]byte, bool, error) {
	cfg := map[string]any{}
	if len(raw) > 0 {
		if err := util.Unmarshal(raw, &cfg); err != nil {
			return nil, false, fmt.Errorf("parsing OPA configuration: %w", err)
		}
		if cfg == nil {
			cfg = map[string]any{}
		}
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
	if version != "" {
		labels["regate_version"] = version
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
