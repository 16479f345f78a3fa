package main

import (
	"errors"
	"os"
	"os/signal"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/secrets"
	"github.com/regate/regate/proxy"
)

func (a *app) serveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve [flags]",
		Short: "Run the proxy as a daemon for many clients",
		Long: `Serve runs the HTTP and SOCKS5 proxy listeners (loopback only unless
--listen-any) until SIGINT or SIGTERM, then drains connections within the
shutdown timeout. SIGHUP reloads the policy (not on Windows); local policy files are also
watched. Clients without proxy credentials are accepted as anonymous
(attempt_id "") unless --allow-anonymous=false.

The admin API (health, status, runtime policy and data, attempts,
decisions, metrics) listens on --admin: by default the unix socket
$XDG_RUNTIME_DIR/regate/admin.sock (else $TMPDIR/regate-UID/admin.sock),
mode 0600 (on Windows 127.0.0.1:8181, token %LOCALAPPDATA%\regate-admin.token);
a loopback HOST:PORT requires the bearer token of
--admin-token-file (generated, mode 0600, when the file does not exist).`,
		Args: argsCode(cobra.NoArgs, exitError),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.serve(cmd) },
	}
	fs := cmd.Flags()
	addPolicyFlags(fs)
	addListenerFlags(fs, "127.0.0.1:3128", "127.0.0.1:1080", config.DefaultAdmin().Addr, true)
	fs.Bool("allow-anonymous", true, "accept clients without proxy credentials")
	fs.StringArray("secret", nil, "hold a secret outside the sandboxes (repeatable): `NAME` (a preset: github, openai, anthropic, npm; or a secrets: entry) or NAME=ENVVAR@HOSTPATTERN[,HOSTPATTERN…]; an attempt registered with \"secrets\": [NAME] gets a placeholder of its own, the proxy sends the real value only to those hosts")
	usageCode(cmd, exitError)
	return cmd
}

func (a *app) serve(cmd *cobra.Command) error {
	cfg, err := loadConfig(cmd, config.ModeServe)
	if err != nil {
		return err
	}
	if cfg.HTTP == "" && cfg.SOCKS == "" {
		return errors.New("every proxy listener is off")
	}
	set, err := loadSecrets(cmd, cfg)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var up atomic.Bool
	st, err := a.assemble(ctx, cfg, stackOptions{ready: listenersReady(&up), secrets: secrets.ForServe(set)})
	if err != nil {
		return err
	}
	if st.inspect != nil && cfg.Inspection.CACert == "" {
		if err := writeServeCA(st.inspect, st.log); err != nil {
			st.stop(ctx, st.log)
			return err
		}
	}
	errc := st.serve()
	up.Store(true)
	log := st.log
	log.Info("serving", "http", st.ls.addr(proxy.ListenerHTTP), "socks5", st.ls.addr(proxy.ListenerSOCKS5), "admin", st.adminAddr,
		"policy", policySource(cfg.Policies, st.engine.Status().Bundles), "allow_anonymous", cfg.AllowAnonymous)
	if cfg.Audit {
		log.Warn("audit mode: what the policy denies is allowed and logged as audit; the SSRF guard and regate's own checks still deny")
	}
	hup := make(chan os.Signal, 1)
	notifyReload(hup)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := st.engine.Reload(ctx); err != nil {
				log.Error("reload refused; the last good policy keeps deciding", "error", err)
			} else {
				log.Info("policy reloaded", "policy", policySource(cfg.Policies, st.engine.Status().Bundles))
			}
		case err = <-errc:
		case <-ctx.Done():
		}
		if err != nil || ctx.Err() != nil {
			break
		}
	}
	up.Store(false)
	log.Info("shutting down", "drain", cfg.ShutdownTimeout)
	st.stop(ctx, log)
	return err
}

// listenersReady is the admin API's view of the proxy listeners: serving
// from start to shutdown.
func listenersReady(up *atomic.Bool) func() error {
	return func() error {
		if !up.Load() {
			return errors.New("the proxy listeners are not serving")
		}
		return nil
	}
}
