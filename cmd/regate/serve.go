package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"

	"github.com/spf13/cobra"

	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/config"
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
	addListenerFlags(fs, "127.0.0.1:3128", "127.0.0.1:1080", config.DefaultAdmin().Addr)
	fs.Bool("allow-anonymous", true, "accept clients without proxy credentials")
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
	ctx := cmd.Context()
	log := newLogger(cfg, a.stderr)
	reg := newRegistry()
	e, err := a.startEngine(ctx, cfg, log, reg, true)
	if err != nil {
		return err
	}
	defer e.stop(ctx, cfg.ShutdownTimeout)
	attempts := attempt.NewRegistry()
	p, err := newProxy(cfg, e.Engine, "", log, reg, attempts)
	if err != nil {
		return err
	}
	ls, err := listen(ctx, cfg)
	if err != nil {
		return err
	}
	var up atomic.Bool
	adm, adminAddr, err := a.startAdmin(ctx, adminWiring{cfg: cfg, engine: e.Engine, proxy: p, ls: ls,
		attempts: attempts, reg: reg, ready: listenersReady(&up), log: log})
	if err != nil {
		ls.close()
		return err
	}
	errc := serve(p, ls, log)
	up.Store(true)
	log.Info("serving", "http", addr(ls.http), "socks5", addr(ls.socks), "admin", adminAddr,
		"policy", policySource(cfg.Policies, e.Status().Bundles), "allow_anonymous", cfg.AllowAnonymous)
	hup := make(chan os.Signal, 1)
	notifyReload(hup)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := e.Reload(ctx); err != nil {
				log.Error("reload refused; the last good policy keeps deciding", "error", err)
			} else {
				log.Info("policy reloaded", "policy", policySource(cfg.Policies, e.Status().Bundles))
			}
		case err = <-errc:
		case <-ctx.Done():
		}
		if err != nil || ctx.Err() != nil {
			break
		}
	}
	up.Store(false)
	shutdown(ctx, p, cfg, log)
	stopAdmin(ctx, adm, cfg.ShutdownTimeout, log)
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

// shutdown stops accepting, drains open connections until the shutdown
// timeout, then cuts what is left.
func shutdown(ctx context.Context, p *proxy.Proxy, cfg *config.Config, log *slog.Logger) {
	log.Info("shutting down", "drain", cfg.ShutdownTimeout)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		log.Warn("drain deadline passed; open connections were cut", "error", err)
	}
}
