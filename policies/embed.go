// Package policies embeds regate's default Rego policy: the data-driven
// allow/deny decision in network.rego and the pattern library in lib/.
// Tests (*_test.rego) are embedded too, for `regate test`, and skipped by
// the engine when it loads the policy.
package policies

import "embed"

// FS holds the default policy's .rego files.
//
//go:embed *.rego lib/*.rego
var FS embed.FS
