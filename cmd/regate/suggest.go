package main

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/declogread"
	"github.com/regate/regate/internal/suggest"
)

func (a *app) suggestCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "suggest [flags] LOG...",
		Short: "Print the smallest allow list that would have allowed every denied or audited connection of decision logs",
		Long: `Suggest reads decision logs and prints the smallest allow list that would
have allowed every connection the policy denied or audited: as the allow:
list of regate's configuration (--format yaml, the default; load it with
regate run --config FILE), as a data document for data.regate.allow (json)
or as a Rego module defining it (rego). Each pattern carries a comment with
the connections, attempts, labels and rules it came from.

Sibling sub-domains collapse to *.parent (**.parent when the parent itself
was seen) once --min-siblings of them were seen, never at or above a public
suffix (no *.com, **.co.uk, **.github.io). Ports other than 80 and 443 are
kept (host:port). Addresses stay exact unless --cidr-prefix asks for CIDRs.

Denies an allow list cannot undo are left out and counted: the proxy's own
(SSRF guard, TLS check, limits), the engine's (policy errors), and the
policy's deny rules (deny patterns, methods, paths, secrets).

--test FILE also writes Rego tests for opa test (or regate test): one per
destination seen, asserting that the policy allows it, and one per
--keep-denied destination, asserting that it stays denied.

` + logSourcesHelp,
		Args: argsCode(cobra.MinimumNArgs(1), exitError),
		RunE: func(cmd *cobra.Command, args []string) error { return a.suggest(cmd, args) },
	}
	fs := cmd.Flags()
	fs.String("format", suggest.FormatYAML, "output `FORMAT`: "+strings.Join(suggest.Formats, ", "))
	fs.Int("min-siblings", suggest.DefaultMinSiblings, "sub-domains of one parent that collapse into *.parent / **.parent")
	fs.Int("cidr-prefix", 0, "group IPv4 addresses into CIDRs of this prefix `LENGTH` (default: exact /32)")
	fs.Int("cidr-prefix6", 0, "group IPv6 addresses into CIDRs of this prefix `LENGTH` (default: exact /128)")
	fs.StringSlice("keep-denied", nil, "`HOST[:PORT]` that stays denied: never suggested nor covered by a pattern (repeatable; port 443 by default)")
	fs.String("test", "", "also write Rego tests guarding the suggestion to `FILE` (a _test.rego)")
	addLogSourceFlags(fs)
	usageCode(cmd, exitError)
	return cmd
}

func (a *app) suggest(cmd *cobra.Command, sources []string) error {
	fs := cmd.Flags()
	format, _ := fs.GetString("format")
	if !slices.Contains(suggest.Formats, format) {
		return fmt.Errorf("--format %q: want one of %s", format, strings.Join(suggest.Formats, ", "))
	}
	opts, err := suggestOptions(cmd)
	if err != nil {
		return err
	}
	events, err := a.readLogs(cmd.Context(), fs, sources)
	if err != nil {
		return err
	}
	obs, skipped := observations(events)
	res, err := suggest.Suggest(obs, opts)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := suggest.Write(&out, res, format); err != nil {
		return err
	}
	if path, _ := fs.GetString("test"); path != "" {
		var tests bytes.Buffer
		if err := suggest.WriteTests(&tests, res, format); err != nil {
			return err
		}
		if err := os.WriteFile(path, tests.Bytes(), 0o644); err != nil {
			return fmt.Errorf("writing tests: %w", err)
		}
	}
	if _, err := a.stdout.Write(out.Bytes()); err != nil {
		return fmt.Errorf("writing suggestion: %w", err)
	}
	a.suggestSummary(len(events), obs, res, skipped)
	return nil
}

func suggestOptions(cmd *cobra.Command) (suggest.Options, error) {
	fs := cmd.Flags()
	var o suggest.Options
	o.MinSiblings, _ = fs.GetInt("min-siblings")
	o.Prefix4, _ = fs.GetInt("cidr-prefix")
	o.Prefix6, _ = fs.GetInt("cidr-prefix6")
	if o.MinSiblings < 1 {
		return o, fmt.Errorf("--min-siblings %d: want at least 1", o.MinSiblings)
	}
	if o.Prefix4 < 0 || o.Prefix4 > 32 {
		return o, fmt.Errorf("--cidr-prefix %d: want 0-32", o.Prefix4)
	}
	if o.Prefix6 < 0 || o.Prefix6 > 128 {
		return o, fmt.Errorf("--cidr-prefix6 %d: want 0-128", o.Prefix6)
	}
	keep, _ := fs.GetStringSlice("keep-denied")
	for _, k := range keep {
		t, err := suggest.ParseTarget(k)
		if err != nil {
			return o, fmt.Errorf("--keep-denied: %w", err)
		}
		o.KeepDenied = append(o.KeepDenied, t)
	}
	return o, nil
}

// observations are the events an allow list would have allowed: the
// policy's denies and audits, with what was left out counted by why.
func observations(events []declogread.Event) ([]suggest.Observation, map[string]int) {
	var obs []suggest.Observation
	skipped := map[string]int{}
	for i := range events {
		ev := &events[i]
		switch {
		case !ev.Connection():
			skipped["not connection decisions (path "+strconv.Quote(ev.Path)+")"]++
			continue
		case ev.Result.PolicyAllowed():
			continue
		case ev.ProxyOwn():
			skipped["the proxy's own denies"]++
			continue
		case ev.Result.Rule == engine.ReasonRuleEngine:
			skipped["policy errors"]++
			continue
		case denyRule(ev.Result.Rule):
			skipped["denied by a deny rule ("+ev.Result.Rule+")"]++
			continue
		}
		d, err := ev.Dest()
		if err != nil {
			skipped["no destination in the input"]++
			continue
		}
		obs = append(obs, suggest.Observation{
			Target: suggest.Target{Host: d.Host, Port: d.Port}, HostIsIP: d.HostIsIP,
			AttemptID: d.AttemptID, Labels: d.Labels, Rule: ev.Result.Rule, Input: ev.Input,
		})
	}
	return obs, skipped
}

// denyRule reports whether rule is one of the default policy's denies
// that an allow pattern does not undo (policies/network.rego).
func denyRule(rule string) bool {
	switch rule {
	case "methods", "paths", "secrets":
		return true
	}
	return strings.HasPrefix(rule, "deny:") || strings.HasPrefix(rule, "attempt.deny:")
}

func (a *app) suggestSummary(read int, obs []suggest.Observation, res suggest.Result, skipped map[string]int) {
	msg := fmt.Sprintf("regate: %d %s for %d denied or audited %s (%d %s read)", len(res.Allow), plural(len(res.Allow), "pattern"),
		len(obs), plural(len(obs), "connection"), read, plural(read, "event"))
	if len(skipped) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(skipped)) {
			parts = append(parts, fmt.Sprintf("%d %s", skipped[k], k))
		}
		msg += "; left out: " + strings.Join(parts, ", ")
	}
	fmt.Fprintln(a.stderr, printable(msg))
}
