package config

import (
	"strings"
	"testing"
)

func TestOPAConfig(t *testing.T) {
	cfg, err := Load(Options{File: "testdata/opa.yaml"})
	if err != nil {
		t.Fatalf("a valid fleet configuration refused: %v", err)
	}
	if !strings.Contains(string(cfg.OPA), `"persistence_directory":"/var/lib/regate/opa"`) {
		t.Errorf("OPA configuration not passed on: %s", cfg.OPA)
	}
}

func TestOPAConfigEveryProblemNamed(t *testing.T) {
	_, err := Load(Options{File: "testdata/opa_broken.yaml"})
	if err == nil {
		t.Fatal("opa_broken.yaml loaded without error")
	}
	for _, want := range []string{
		`opa.bundels: unknown key`,
		`opa.services.bundles.timeout_secs: unknown key`,
		`opa.bundles.org: invalid configuration for bundle "org": service name "bundels" not found`,
		`opa.bundles.team: invalid configuration for bundle "team": key id team not found`,
		`opa.decision_logs.service: no service "control" in opa.services`,
		`opa.status: `,
		`opa.plugins.envoy_ext_authz_grpc: regate runs no such plugin`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
