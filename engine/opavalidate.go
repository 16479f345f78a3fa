package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/open-policy-agent/opa/v1/config"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/bundle"
	"github.com/open-policy-agent/opa/v1/plugins/discovery"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/plugins/server/decoding"
	"github.com/open-policy-agent/opa/v1/plugins/server/encoding"
	"github.com/open-policy-agent/opa/v1/plugins/status"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"
)

// unknownOption matches the warning OPA's configuration schema gives for a
// key it does not know.
var unknownOption = regexp.MustCompile(`^unknown configuration option "(.+)" encountered$`)

// ValidateOPAConfig checks OPA's configuration (the `opa` key of regate's)
// the way the engine's plugin manager will use it, without starting
// anything: OPA's schema (an unknown key is an error, as everywhere in
// regate's configuration), services and keys, then the configuration of
// the bundle, decision-log, status and discovery plugins with OPA's own
// builders. Every problem is returned, each prefixed with its key
// ("opa.bundles: …").
func ValidateOPAConfig(raw []byte) error {
	out, _, err := buildOPAConfig(raw, opaOptions{})
	if err != nil {
		return err
	}
	parsed, err := config.ParseConfig(out, "regate")
	if err != nil {
		return fmt.Errorf("opa: %w", err)
	}
	var errs []error
	for _, w := range parsed.Warnings {
		if m := unknownOption.FindStringSubmatch(w); m != nil {
			errs = append(errs, fmt.Errorf("opa.%s: unknown key", m[1]))
		}
	}
	if _, err := keys.ParseKeysConfig(parsed.Keys); err != nil {
		return errors.Join(append(errs, fmt.Errorf("opa.keys: %w", err))...)
	}
	// The manager parses services (and keys, checked above, and caching);
	// it starts nothing until Start.
	mgr, err := plugins.New(out, "regate", inmem.New(), plugins.Logger(logging.NewNoOpLogger()))
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("opa.services: %w", err))...)
	}
	defer mgr.Stop(context.Background())
	return errors.Join(append(errs, validatePlugins(mgr, parsed)...)...)
}

// validatePlugins runs OPA's configuration builders for the plugins regate
// runs, as OPA's discovery does when it creates them.
func validatePlugins(mgr *plugins.Manager, c *config.Config) []error {
	var errs []error
	add := func(key string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("opa.%s: %w", key, err))
		}
	}
	services, keyConfigs := mgr.Services(), mgr.PublicKeys()
	for _, name := range slices.Sorted(maps.Keys(c.Plugins)) {
		if name != sinkPluginName {
			add("plugins."+name, errors.New("regate runs no such plugin"))
		}
	}
	if c.Bundle != nil {
		_, err := bundle.ParseConfig(c.Bundle, services) //nolint:staticcheck // OPA still accepts it
		add("bundle", err)
	}
	// One bundle at a time, so that every bad one is reported.
	var bundles map[string]json.RawMessage
	if err := util.Unmarshal(c.Bundles, &bundles); c.Bundles != nil && err != nil {
		add("bundles", err)
	}
	for _, name := range slices.Sorted(maps.Keys(bundles)) {
		one, _ := json.Marshal(map[string]json.RawMessage{name: bundles[name]})
		_, err := bundle.NewConfigBuilder().WithBytes(one).WithServices(services).WithKeyConfigs(keyConfigs).Parse()
		add("bundles."+name, err)
	}
	dl, err := logs.NewConfigBuilder().WithBytes(c.DecisionLogs).WithServices(services).
		WithPlugins([]string{sinkPluginName}).WithLogger(logging.NewNoOpLogger()).Parse()
	add("decision_logs", err)
	// OPA checks the service only when no plugin is set; regate always
	// sets its own.
	if dl != nil && dl.Service != "" && !slices.Contains(services, dl.Service) {
		add("decision_logs.service", fmt.Errorf("no service %q in opa.services", dl.Service))
	}
	_, err = status.NewConfigBuilder().WithBytes(c.Status).WithServices(services).
		WithPlugins([]string{sinkPluginName}).Parse()
	add("status", err)
	_, err = discovery.NewConfigBuilder().WithBytes(c.Discovery).WithServices(services).WithKeyConfigs(keyConfigs).Parse()
	add("discovery", err)
	if c.Server != nil {
		// The admin API serves OPA's REST routes with these limits.
		_, err = decoding.NewConfigBuilder().WithBytes(c.Server.Decoding).Parse()
		add("server.decoding", err)
		_, err = encoding.NewConfigBuilder().WithBytes(c.Server.Encoding).Parse()
		add("server.encoding", err)
	}
	return errs
}
