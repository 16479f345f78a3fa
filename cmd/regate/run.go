package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/childenv"
	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/isolate"
	"github.com/regate/regate/internal/secrets"
)

func (a *app) runCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "run [flags] [--] CMD [ARGS...]",
		Short: "Run CMD with every connection going through the policy",
		Long: `Run starts the policy engine and an HTTP and a SOCKS5 proxy on ephemeral
loopback ports, bound to one attempt, then runs CMD with HTTP_PROXY,
HTTPS_PROXY, ALL_PROXY and the variables common tools read pointing at them.
When CMD exits, regate prints what was blocked and exits with CMD's status.

Exit status: CMD's own; 128+N when signal N killed it; 127 when CMD is not
found; 126 when it cannot be executed; 125 when regate itself fails.`,
		Example: `  regate run --allow github.com --allow '**.githubusercontent.com' -- git clone https://github.com/org/repo
  regate run --policy ./policy -- npm ci`,
		Args: argsCode(cobra.MinimumNArgs(1), exitRunFailed),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runSandboxed(cmd, args)
		},
	}
	fs := cmd.Flags()
	fs.SetInterspersed(false) // everything from CMD on belongs to CMD
	addPolicyFlags(fs)
	addListenerFlags(fs, "127.0.0.1:0, an ephemeral port", "127.0.0.1:0", "off", false)
	fs.String("attempt-id", "", "the attempt's id (default 128 random bits)")
	fs.StringToString("label", nil, "attempt label `KEY=VALUE` (repeatable), as input.attempt.labels")
	fs.BoolP("quiet", "q", false, "do not print the summary of blocked (under --audit, would-be-blocked) connections")
	fs.String("isolate", "", "run CMD in its own user, network, mount and PID namespaces, regate its only way out (Linux); `MODE` transparent (the default: programs that ignore the proxy variables are decided too) or proxy (only the proxy listeners)")
	fs.Lookup("isolate").NoOptDefVal = config.IsolateTransparent
	fs.StringSlice("hide", nil, "with --isolate, also hide `PATH` from CMD (repeatable)")
	fs.String("isolate-user", "", "with --isolate, run CMD as `USER` (regate must run as root)")
	fs.StringArray("secret", nil, "keep a secret outside the sandbox (repeatable): `NAME` (a preset: github, openai, anthropic, npm; or a secrets: entry) or NAME=ENVVAR@HOSTPATTERN[,HOSTPATTERN…]; CMD gets a placeholder, the proxy sends the real value only to those hosts")
	usageCode(cmd, exitRunFailed)
	return cmd
}

// runSandboxed is `regate run`: every failure of regate itself exits 125.
func (a *app) runSandboxed(cmd *cobra.Command, argv []string) error {
	path, err := lookCommand(argv[0])
	if err != nil {
		return err
	}
	sb, err := a.startSandbox(cmd)
	if err != nil {
		return withCode(exitRunFailed, err)
	}
	env := childenv.Merge(os.Environ(), childenv.Env(sb.ls.childProxies(), sb.id, sb.token, a.self))
	if sb.secrets != nil {
		// No real value reaches the command: its variables and arguments
		// hold placeholders.
		env, argv = sb.secrets.ChildEnv(env), sb.secrets.ChildArgs(argv)
		if sb.isolated == nil {
			secretsWarning(a.stderr, sb.secrets)
		}
	}
	var binds [][2]string
	if sb.inspect != nil {
		trust, dir, err := trustInspection(sb.inspect, env)
		if err != nil {
			sb.stop(cmd.Context())
			return withCode(exitRunFailed, err)
		}
		defer os.RemoveAll(dir)
		env = childenv.Merge(env, trust.Env)
		if trust.System != "" {
			binds = append(binds, [2]string{trust.Bundle, trust.System})
		}
	}
	if ssh, warning := a.gitSSHEnv(cmd.Context(), os.Environ()); ssh != "" {
		env = childenv.Merge(env, []string{ssh})
		if warning != "" {
			fmt.Fprintln(a.stderr, warning)
		}
	}
	if err := cmd.Context().Err(); err != nil {
		sb.stop(cmd.Context())
		return withCode(exitRunFailed, errors.New("interrupted before the command started"))
	}
	if sb.isolated == nil {
		if w := nodeWarning(cmd.Context(), path, env); w != "" {
			fmt.Fprintln(a.stderr, w)
		}
	}
	var code int
	if sb.isolated != nil {
		code, err = runIsolated(sb.isolated, path, argv, env, binds, a.stdin)
	} else {
		code, err = runChild(path, argv, env, a.stdin, a.stdout, a.stderr)
	}
	sb.stop(cmd.Context())
	if quiet, _ := cmd.Flags().GetBool("quiet"); !quiet {
		sb.summary.print(a.stderr)
		printSecretUses(a.stderr, sb.secrets)
	}
	if code == exitOK && err == nil {
		return nil
	}
	return withCode(code, err)
}

// sandbox is the stack of one `regate run`, bound to its attempt.
type sandbox struct {
	*stack
	id, token   string
	summary     *blockedSummary
	unobserve   func()
	isolated    *isolate.Sandbox // nil without --isolate
	secrets     *secrets.Set     // nil without secrets
	transparent func()           // stops the transparent path; nil when none
}

func (a *app) startSandbox(cmd *cobra.Command) (_ *sandbox, err error) {
	cfg, err := loadConfig(cmd, config.ModeRun)
	if err != nil {
		return nil, err
	}
	if cfg.HTTP == "" {
		return nil, errors.New("run needs the HTTP listener (--http is off)")
	}
	id, labels, err := attemptFlags(cmd)
	if err != nil {
		return nil, err
	}
	set, err := loadSecrets(cmd, cfg)
	if err != nil {
		return nil, err
	}
	token := attempt.NewToken()
	summary := newBlockedSummary()
	opts := stackOptions{bound: &attempt.Attempt{ID: id, Token: token, Labels: labels}, onOutcome: summary.outcome, secrets: secrets.ForRun(set)}
	var sbx *isolate.Sandbox
	if cfg.Isolate.Enabled {
		// The namespace is built while the engine compiles the policy;
		// the listeners step waits for it.
		ready := make(chan error, 1)
		go func() {
			s, err := a.isolation(cfg)
			sbx = s
			ready <- err
		}()
		var built error
		waited := false
		wait := func() error {
			if !waited {
				built, waited = <-ready, true
			}
			return built
		}
		opts.listen = func(ctx context.Context, specs []listenerSpec) (listeners, error) {
			if err := wait(); err != nil {
				return nil, err
			}
			return isolatedListeners(sbx)(ctx, specs)
		}
		defer func() {
			if err != nil && wait() == nil {
				sbx.Close() // regate failed after the namespace was built
			}
		}()
	}
	st, err := a.assemble(cmd.Context(), cfg, opts)
	if err != nil {
		return nil, err
	}
	if st.adminAddr != "" {
		st.log.Info("admin API listening", "admin", st.adminAddr)
	}
	if cfg.Watch && len(cfg.Policies) > 0 {
		fmt.Fprintln(a.stderr, "regate: warning: --watch reloads the policy files when they change, and the command can write them")
	}
	sb := &sandbox{stack: st, id: id, token: token, summary: summary, isolated: sbx, secrets: set}
	if sbx != nil {
		if sb.transparent, err = startTransparent(cmd.Context(), sbx, st, a.stderr, summary.udp); err != nil {
			return nil, err
		}
	}
	sb.unobserve = st.engine.Observe(sb.summary.observe)
	st.serve()
	return sb, nil
}

// attemptFlags reads --attempt-id (default random) and --label.
func attemptFlags(cmd *cobra.Command) (string, map[string]string, error) {
	id, _ := cmd.Flags().GetString("attempt-id")
	labels, _ := cmd.Flags().GetStringToString("label")
	if id == "" {
		return attempt.NewID(), labels, nil
	}
	if strings.ContainsAny(id, ":\x00\r\n") {
		return "", nil, fmt.Errorf("--attempt-id %q: must not contain ':' or control characters", id)
	}
	return id, labels, nil
}

// stop tears the stack down; every decision event has reached the summary
// by then.
func (sb *sandbox) stop(ctx context.Context) {
	if sb.isolated != nil {
		sb.isolated.Close() // the command and all it started end with the init
	}
	if sb.transparent != nil {
		sb.transparent()
	}
	sb.stack.stop(ctx, slog.New(slog.DiscardHandler))
	sb.unobserve()
}
