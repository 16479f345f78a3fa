package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/isolate"
	"github.com/regate/regate/proxy"
)

func (a *app) checkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check [flags]",
		Short: "Validate the configuration and compile the policy, without serving",
		Long: `Check reads the configuration exactly as serve does (file, REGATE_* variables,
flags), reports every problem at once, then starts the policy engine without
listeners: the policy is compiled and, when OPA bundles are configured,
downloaded and activated. Exit status 0 when everything is valid, 1 otherwise.`,
		Args: argsCode(cobra.NoArgs, exitError),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.check(cmd) },
	}
	fs := cmd.Flags()
	addPolicyFlags(fs)
	addListenerFlags(fs, "127.0.0.1:3128", "127.0.0.1:1080", "off", true)
	fs.Bool("allow-anonymous", true, "accept clients without proxy credentials")
	fs.Duration("wait", 10*time.Second, "how long to wait for remote bundles to activate")
	usageCode(cmd, exitError)
	return cmd
}

func (a *app) check(cmd *cobra.Command) error {
	cfg, err := loadConfig(cmd, config.ModeOneShot)
	if err != nil {
		return err
	}
	log := newLogger(cfg, a.stderr)
	reg := prometheus.NewRegistry()
	insp, err := newInspection(cfg, config.ModeOneShot, log)
	if err != nil {
		return fmt.Errorf("invalid inspection configuration: %w", err)
	}
	if _, err := newProxy(cfg, nil, "", log, reg, nil, nil, insp, nil); err != nil {
		return fmt.Errorf("invalid proxy configuration: %w", err)
	}
	ctx := cmd.Context()
	e, err := a.startEngine(ctx, cfg, log, reg, false, true)
	if err != nil {
		return err
	}
	defer e.stop(ctx, 5*time.Second)
	wait, _ := cmd.Flags().GetDuration("wait")
	if err := waitReady(ctx, e.Engine, wait); err != nil {
		return err
	}
	st := e.Status()
	fmt.Fprintf(a.stdout, "configuration: ok (%s)\n", orNone(cfg.File, "no file"))
	fmt.Fprintf(a.stdout, "policy: ok, compiled (%s)\n", policySource(cfg.Policies, st.Bundles))
	for _, name := range slices.Sorted(maps.Keys(st.Bundles)) {
		fmt.Fprintf(a.stdout, "bundle %s: revision %q\n", name, st.Bundles[name])
	}
	fmt.Fprintf(a.stdout, "listeners: http %s, socks %s, admin %s\n",
		orNone(cfg.HTTP, config.Off), orNone(cfg.SOCKS, config.Off), orNone(cfg.Admin.Addr, config.Off))
	if err := isolate.Available(); err != nil {
		fmt.Fprintf(a.stdout, "isolation: unavailable: %v\n", err)
	} else {
		fmt.Fprintln(a.stdout, "isolation: available (regate run --isolate)")
	}
	a.checkUpstream(ctx, cfg)
	switch {
	case insp == nil:
		fmt.Fprintln(a.stdout, "HTTPS inspection: off")
	case cfg.Inspection.CACert != "":
		fmt.Fprintf(a.stdout, "HTTPS inspection: on, CA %s (%s, until %s)\n", cfg.Inspection.CACert,
			insp.CA.Certificate().Subject.CommonName, insp.CA.Certificate().NotAfter.Format(time.RFC3339))
	default:
		fmt.Fprintln(a.stdout, "HTTPS inspection: on, CA generated at each start (run: per run; serve: inspect-ca.pem beside the admin socket)")
	}
	return nil
}

// checkUpstream says which parent proxy is in effect (without
// credentials) and whether each answers; it sends no request through it.
func (a *app) checkUpstream(ctx context.Context, cfg *config.Config) {
	chain, err := upstreamChain(cfg.Proxy)
	if err != nil || chain == nil {
		fmt.Fprintln(a.stdout, "upstream proxy: none (destinations are dialled directly)")
		return
	}
	fmt.Fprintf(a.stdout, "upstream proxy: %s\n", chain)
	timeout := cfg.Proxy.DialTimeout
	if timeout == 0 {
		timeout = proxy.DefaultDialTimeout
	}
	for _, p := range chain.Parents() {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		if err := p.Check(ctx); err != nil {
			fmt.Fprintf(a.stdout, "upstream proxy %s: does not answer: %v\n", p, err)
		} else {
			fmt.Fprintf(a.stdout, "upstream proxy %s: answers\n", p)
		}
		cancel()
	}
}

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return s
}

// policySource says what decides: local paths, OPA bundles or the embedded
// default.
func policySource(paths []string, bundles map[string]string) string {
	switch {
	case len(paths) > 0:
		return strings.Join(paths, ", ")
	case len(bundles) > 0:
		return "OPA bundles"
	default:
		return "embedded default, " + defaultPolicyRevision()
	}
}
