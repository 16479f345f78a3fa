package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/regate/regate/internal/admin"
	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/isolate"
	"github.com/regate/regate/internal/isolate/transparent"
)

// isolation builds the namespace of `regate run --isolate` for cfg: what
// regate reads is bound read-only inside, what would be a way out is
// hidden, and the proxy's listeners are created inside.
func (a *app) isolation(cfg *config.Config) (*isolate.Sandbox, error) {
	spec := isolate.Spec{Self: a.self, Listeners: len(onListeners(cfg)), Transparent: cfg.Isolate.Mode != config.IsolateProxy}
	for _, p := range append(append([]string{a.self, cfg.File}, cfg.Policies...), cfg.Admin.TokenFile) {
		if p != "" && exists(p) {
			spec.ReadOnly = append(spec.ReadOnly, p)
		}
	}
	spec.Hide = append(spec.Hide, isolate.DefaultHidden...)
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		spec.Hide = append(spec.Hide, filepath.Join(dir, "bus"))
	}
	for _, addr := range []string{config.DefaultAdmin().Addr, cfg.Admin.Addr} {
		if admin.IsUnix(addr) {
			spec.Hide = append(spec.Hide, filepath.Dir(strings.TrimPrefix(addr, "unix:")))
		}
	}
	if cfg.DecisionLog != "" && cfg.DecisionLog != "-" {
		spec.Hide = append(spec.Hide, cfg.DecisionLog)
	}
	spec.Hide = append(spec.Hide, cfg.Isolate.Hide...)
	if name := cfg.Isolate.User; name != "" {
		u, err := lookupUser(name)
		if err != nil {
			return nil, err
		}
		spec.User = u
	}
	return isolate.Start(spec, isolate.Stdio{In: a.stdin, Out: a.stdout, Err: a.stderr})
}

// isolatedListeners hands the listeners created inside the namespace to
// the specs that are on, in order.
func isolatedListeners(sbx *isolate.Sandbox) func(context.Context, []listenerSpec) (listeners, error) {
	return func(_ context.Context, specs []listenerSpec) (listeners, error) {
		var ls listeners
		inside := sbx.Listeners()
		for _, spec := range specs {
			if spec.addr == "" {
				continue
			}
			if len(ls) == len(inside) {
				return nil, fmt.Errorf("isolating: no listener inside for %s", spec.name)
			}
			ls = append(ls, openListener{listenerSpec: spec, ln: inside[len(ls)]})
		}
		return ls, nil
	}
}

// onListeners are the configured listener specs that are on.
func onListeners(cfg *config.Config) []listenerSpec {
	var on []listenerSpec
	for _, s := range listenerSpecs(cfg) {
		if s.addr != "" {
			on = append(on, s)
		}
	}
	return on
}

// lookupUser resolves --isolate-user: a name or a numeric uid.
func lookupUser(name string) (*isolate.User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		if u, err = user.LookupId(name); err != nil {
			return nil, fmt.Errorf("--isolate-user %q: %w", name, err)
		}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("--isolate-user %q: not a numeric uid/gid", name)
	}
	return &isolate.User{UID: uid, GID: gid}, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// runIsolated starts the command inside sbx, passes on the signals regate
// receives to the init (which passes them on to the command), and returns
// the command's exit code.
func runIsolated(sbx *isolate.Sandbox, path string, argv, env []string, stdin io.Reader) (int, error) {
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, forwardedSignals...)
	defer signal.Stop(sigc)
	if err := sbx.Run(path, argv, env); err != nil {
		return exitRunFailed, err
	}
	return supervise(sbx.Process(), sbx.Wait, sigc, stdin, argv[0])
}

// startTransparent serves the link of sbx through the stack's proxy:
// programs that ignore the proxy variables are decided too. Without a
// link (no user namespace could make one, say) it says so once on stderr and
// only proxy-aware programs reach the network.
func startTransparent(ctx context.Context, sbx *isolate.Sandbox, st *stack, stderr io.Writer, onUDP func(string, int)) (func(), error) {
	link := sbx.Link()
	if link == nil {
		if why := sbx.LinkError(); why != "" {
			fmt.Fprintf(stderr, "regate: --isolate: no transparent path (%s): only programs that use the proxy variables reach the network\n", why)
		}
		return nil, nil
	}
	stop, err := transparent.Start(context.WithoutCancel(ctx), link, st.proxy, st.log, transparent.Options{
		HTTPPorts: st.cfg.Isolate.HTTPPorts, DNSPool: st.cfg.Isolate.DNSPool, OnUDP: onUDP, Registerer: st.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("isolating: starting the transparent path: %w", err)
	}
	return stop, nil
}
