package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// policyPatterns is the allow list of the proxy workloads' regate: n
// patterns of the forms users write (exact names, one-label and
// any-depth wildcards, names with a port), upstreamName among them, so
// that a decision is made against a policy of a realistic size.
func policyPatterns(n int) []string {
	out := make([]string, 0, max(n, 1))
	for i := 1; i < n; i++ {
		switch i % 4 {
		case 0:
			out = append(out, fmt.Sprintf("svc%d.example.com", i))
		case 1:
			out = append(out, fmt.Sprintf("*.team%d.example.org", i))
		case 2:
			out = append(out, fmt.Sprintf("**.cdn%d.example.net", i))
		default:
			out = append(out, fmt.Sprintf("registry%d.example.io:443", i))
		}
	}
	return append(out, upstreamName)
}

// servedConfig writes the configuration file of a `regate serve` of the
// proxy workloads: the allow list of policyPatterns(n), upstreamName
// pinned to 127.0.0.1 and loopback exempt from the SSRF guard (what
// pinnedPolicy says in flags), and returns its path. A positive tunnels
// raises the limits of open tunnels, in all and of one client, to it.
func servedConfig(dir string, n, tunnels int) (string, error) {
	cfg := map[string]any{
		"allow":       policyPatterns(n),
		"hosts":       map[string]string{upstreamName: "127.0.0.1"},
		"allow_cidrs": []string{"127.0.0.0/8"},
	}
	if tunnels > 0 {
		cfg["proxy"] = map[string]int{"max_tunnels": tunnels, "max_tunnels_per_client": tunnels}
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("encoding the served configuration: %w", err)
	}
	path := filepath.Join(dir, fmt.Sprintf("serve-%d-patterns-%d-tunnels.json", n, tunnels))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return "", fmt.Errorf("writing the served configuration: %w", err)
	}
	return path, nil
}
