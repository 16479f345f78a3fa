package main

import (
	"context"
	"os/exec"
	"strings"

	"github.com/regate/regate/internal/childenv"
)

// userSSHCommand is the ssh command git would run for the user without
// regate, as git chooses it: $GIT_SSH_COMMAND, else core.sshCommand (as
// `git config` reads it in the current directory: system, global and this
// repository's configuration), else $GIT_SSH (a program, quoted for the
// shell); "" for plain ssh. regate's GIT_SSH_COMMAND keeps it and adds its
// ProxyCommand (childenv.GitSSHCommand), since the variable overrides both.
func userSSHCommand(ctx context.Context, env []string) string {
	if v := lookupEnv(env, "GIT_SSH_COMMAND"); v != "" {
		return v
	}
	if v := gitConfig(ctx, env, "core.sshCommand"); v != "" {
		return v
	}
	if v := lookupEnv(env, "GIT_SSH"); v != "" {
		return childenv.ShellQuote(v)
	}
	return ""
}

// gitConfig is `git config --get key` run with env; "" when git is
// missing, the key unset, or git fails.
func gitConfig(ctx context.Context, env []string, key string) string {
	gitPath, err := exec.LookPath("git")
	if err != nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, gitPath, "config", "--get", key)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// lookupEnv is the last value of key in env (as exec uses it).
func lookupEnv(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}

// gitSSHEnv is the GIT_SSH_COMMAND of the child, and a warning when the
// user's command has a proxy of its own that ssh would prefer to regate's.
func (a *app) gitSSHEnv(ctx context.Context, userEnv []string) (kv, warning string) {
	if a.self == "" {
		return "", ""
	}
	user := userSSHCommand(ctx, userEnv)
	if childenv.HasOwnProxy(user) {
		warning = "regate: warning: your ssh command for git (GIT_SSH_COMMAND or core.sshCommand) sets its own " +
			"ProxyCommand or ProxyJump, which ssh prefers to regate's: git over SSH would not go through regate"
	}
	return "GIT_SSH_COMMAND=" + childenv.GitSSHCommand(user, a.self), warning
}
