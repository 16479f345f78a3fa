package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/replay"
)

// replayDecisionTimeout bounds one replayed evaluation unless
// --decision-timeout or the configuration says otherwise.
const replayDecisionTimeout = 10 * time.Second

// exitReplayChanged is `regate replay`'s status when decisions change.
const exitReplayChanged = 3

// What --fail-on gates on.
var failOn = map[string]string{"deny": replay.AllowToDeny, "allow": replay.DenyToAllow, "any": ""}

func (a *app) replayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay [flags] LOG...",
		Short: "Re-decide logged connections with a new policy and report what would change (exit 3 when something does)",
		Long: `Replay evaluates every logged input again with the policy and data given by
--policy, --config, --allow, --deny … (loaded as regate check loads them,
with the same engine) and reports the decisions that change: allow→deny and
deny→allow, grouped by host and rules, with counts and the first decision
id of each group (--format text or json). An audited decision counts as
the policy's deny.

Events whose input was erased or masked by a decision-log mask policy, or
whose credential headers were redacted, are counted as not replayable,
never guessed at. The proxy's own denies (SSRF guard, TLS check, limits)
and REST API queries are not the policy's decisions and are skipped.
Nothing is written to a decision log, and nothing is uploaded. One
evaluation may take 10 s unless --decision-timeout says otherwise.

Exit status: 0 nothing changed, 3 a change --fail-on names (deny: allow→deny,
allow: deny→allow, any), 1 error. A policy repository's CI can gate on it.

` + logSourcesHelp,
		Args: argsCode(cobra.MinimumNArgs(1), exitError),
		RunE: func(cmd *cobra.Command, args []string) error { return a.replay(cmd, args) },
	}
	fs := cmd.Flags()
	addPolicyFlags(fs)
	addLogSourceFlags(fs)
	fs.String("format", "text", "report `FORMAT`: "+strings.Join(replay.Formats, " or "))
	fs.String("fail-on", "any", "exit 3 on changes of this `KIND`: deny (allow→deny), allow (deny→allow) or any")
	fs.Duration("wait", 10*time.Second, "how long to wait for remote bundles to activate")
	usageCode(cmd, exitError)
	return cmd
}

func (a *app) replay(cmd *cobra.Command, sources []string) error {
	fs := cmd.Flags()
	format, _ := fs.GetString("format")
	if !slices.Contains(replay.Formats, format) {
		return fmt.Errorf("--format %q: want %s", format, strings.Join(replay.Formats, " or "))
	}
	gate, _ := fs.GetString("fail-on")
	direction, ok := failOn[gate]
	if !ok {
		return fmt.Errorf("--fail-on %q: want deny, allow or any", gate)
	}
	cfg, err := loadConfig(cmd, config.ModeOneShot)
	if err != nil {
		return err
	}
	events, err := a.readLogs(cmd.Context(), fs, sources)
	if err != nil {
		return err
	}
	// Replayed decisions are not decisions: they go to no log, and the
	// engine runs offline (no decision-log upload, no status reports).
	cfg.DecisionLog = ""
	if cfg.DecisionTimeout == 0 {
		// Off a connection's path, a busy machine must not turn an
		// evaluation into a timeout's deny and so into a change.
		cfg.DecisionTimeout = replayDecisionTimeout
	}
	ctx := cmd.Context()
	e, err := a.startEngine(ctx, cfg, newLogger(cfg, a.stderr), prometheus.NewRegistry(), false, true)
	if err != nil {
		return err
	}
	defer e.stop(ctx, 5*time.Second)
	wait, _ := fs.GetDuration("wait")
	if err := waitReady(ctx, e.Engine, wait); err != nil {
		return err
	}
	r, err := replay.Run(ctx, e, events)
	if err != nil {
		return err
	}
	if err := replay.Write(a.stdout, r, format); err != nil {
		return err
	}
	if r.Changed(direction) > 0 {
		return withCode(exitReplayChanged, nil)
	}
	return nil
}
