package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/config"
)

// Exit codes of `regate decide`.
const (
	exitDecideAllow = 0
	exitDecideDeny  = 1
	exitDecideError = 2
)

// decideOutput is what `regate decide` prints.
type decideOutput struct {
	engine.Decision
	Input   engine.Input      `json:"input"`
	Bundles map[string]string `json:"bundles"`
	Modules []string          `json:"modules,omitempty"`
}

func (a *app) decideCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "decide [flags] TARGET",
		Short: "Print the policy decision for a URL or HOST:PORT as JSON (exit 0 allow, 1 deny, 2 error)",
		Long: `Decide evaluates the policy for one connection and prints the decision as JSON:
allow, reason, rule, decision_id, the normalised input and the policy's bundles.

TARGET is a URL (http://host/path is a plain HTTP request, https://host a
CONNECT tunnel) or HOST:PORT (a CONNECT tunnel). --scheme, --method and
--attempt-id set the rest of the input.

Exit status: 0 allowed, 1 denied, 2 error (bad target, configuration or policy).`,
		Args: argsCode(cobra.ExactArgs(1), exitDecideError),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.decide(cmd, args[0]); err != nil {
				var ee *exitErr
				if errors.As(err, &ee) {
					return err
				}
				return withCode(exitDecideError, err)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	addPolicyFlags(fs)
	fs.String("method", "", "HTTP method (default GET for http, CONNECT otherwise)")
	fs.String("scheme", "", "how the client asks: http, https (CONNECT) or socks5")
	fs.String("attempt-id", "", "the attempt the connection belongs to")
	fs.StringToString("label", nil, "attempt label `KEY=VALUE` (repeatable), as input.attempt.labels")
	fs.Duration("wait", 10*time.Second, "how long to wait for remote bundles to activate")
	usageCode(cmd, exitDecideError)
	return cmd
}

func (a *app) decide(cmd *cobra.Command, target string) error {
	in, err := decideInput(cmd, target)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(cmd, config.ModeOneShot)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	e, err := a.startEngine(ctx, cfg, newLogger(cfg, a.stderr), prometheus.NewRegistry(), false, false)
	if err != nil {
		return err
	}
	defer e.stop(ctx, 5*time.Second)
	wait, _ := cmd.Flags().GetDuration("wait")
	if err := waitReady(ctx, e.Engine, wait); err != nil {
		return err
	}
	d, derr := e.Decide(ctx, in)
	st := e.Status()
	out := decideOutput{Decision: d, Input: in, Bundles: st.Bundles, Modules: st.Modules}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding decision: %w", err)
	}
	fmt.Fprintf(a.stdout, "%s\n", b)
	switch {
	case derr != nil:
		return withCode(exitDecideError, fmt.Errorf("deciding: %w", derr))
	case d.Allow:
		return nil
	default:
		return withCode(exitDecideDeny, nil)
	}
}

// decideInput builds the policy input from TARGET and the flags.
func decideInput(cmd *cobra.Command, target string) (engine.Input, error) {
	fs := cmd.Flags()
	scheme, _ := fs.GetString("scheme")
	method, _ := fs.GetString("method")
	attemptID, _ := fs.GetString("attempt-id")
	labels, _ := fs.GetStringToString("label")
	t, err := parseTarget(target)
	if err != nil {
		return engine.Input{}, err
	}
	if scheme == "" {
		scheme = t.scheme
	}
	if !slices.Contains(engine.Schemes, scheme) {
		return engine.Input{}, fmt.Errorf("--scheme %q: want one of %s", scheme, strings.Join(engine.Schemes, ", "))
	}
	if method == "" {
		method = engine.MethodConnect
		if scheme == engine.SchemeHTTP {
			method = "GET"
		}
	}
	in := engine.Input{
		Host: t.host, Port: t.port, Scheme: scheme, Method: strings.ToUpper(method),
		AttemptID: attemptID, HostIsIP: t.isIP,
	}
	if scheme == engine.SchemeHTTP {
		in.Path = t.path
	}
	if len(labels) > 0 {
		in.Attempt = &engine.Attempt{Labels: labels}
	}
	return in, nil
}

type target struct {
	host   string
	port   int
	isIP   bool
	scheme string
	path   string
}

// parseTarget reads a URL (http or https) or HOST:PORT.
func parseTarget(s string) (target, error) {
	var t target
	var host, port string
	if strings.Contains(s, "://") {
		u, err := url.Parse(s)
		if err != nil {
			return t, fmt.Errorf("parsing target: %w", err)
		}
		switch u.Scheme {
		case "http":
			t.scheme, port = engine.SchemeHTTP, "80"
		case "https":
			t.scheme, port = engine.SchemeHTTPS, "443"
		default:
			return t, fmt.Errorf("target %q: scheme %q is not http or https (use HOST:PORT and --scheme)", s, u.Scheme)
		}
		host = u.Hostname()
		if u.Port() != "" {
			port = u.Port()
		}
		t.path = u.EscapedPath()
		if t.path == "" {
			t.path = "/"
		}
	} else {
		var err error
		host, port, err = net.SplitHostPort(s)
		if err != nil {
			return t, fmt.Errorf("target %q is not a URL or HOST:PORT", s)
		}
		t.scheme = engine.SchemeHTTPS
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return t, fmt.Errorf("target %q: port %q is not 1-65535", s, port)
	}
	t.port = n
	t.host, t.isIP, err = engine.NormalizeHost(host)
	if err != nil {
		return t, fmt.Errorf("target %q: %w", s, err)
	}
	return t, nil
}
