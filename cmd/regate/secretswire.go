package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/secrets"
)

// loadSecrets loads the secrets of a run or serve (the secrets: entries and each
// --secret) from regate's own environment or their files, and fits the
// configuration to them: inspection on (their hosts are always
// inspected), data.regate.secrets for the policy, their files hidden
// under --isolate. nil when there are none.
func loadSecrets(cmd *cobra.Command, cfg *config.Config) (*secrets.Set, error) {
	flags, _ := cmd.Flags().GetStringArray("secret")
	specs, err := secrets.Merge(cfg.Secrets, flags)
	if err != nil {
		return nil, err
	}
	if len(specs) == 0 {
		return nil, nil
	}
	loaded, err := secrets.Load(specs, os.Getenv)
	if err != nil {
		return nil, err
	}
	set := secrets.NewSet(loaded)
	cfg.Inspection.Enabled = true
	if cfg.Data == nil {
		cfg.Data = map[string]any{}
	}
	regate, ok := cfg.Data["regate"].(map[string]any)
	if !ok {
		regate = map[string]any{}
		cfg.Data["regate"] = regate
	}
	regate["secrets"] = set.Data()
	for _, s := range loaded {
		if s.File != "" {
			cfg.Isolate.Hide = append(cfg.Isolate.Hide, s.File)
		}
	}
	return set, nil
}

// secretsWarning is printed once by a run without --isolate: the command
// runs as the same user, so it can read the real values where regate got
// them.
func secretsWarning(w io.Writer, set *secrets.Set) {
	var where []string
	files := false
	for _, s := range set.Secrets() {
		where = append(where, fmt.Sprintf("%s (%s)", s.Name, s.Source))
		files = files || s.File != ""
	}
	if len(where) == 0 {
		return
	}
	from := fmt.Sprintf("/proc/%d/environ", os.Getpid())
	fix := "run with --isolate, which gives the command its own /proc"
	if files {
		from += " or its file"
		fix += " and hides the secrets' files (or --hide FILE)"
	}
	fmt.Fprintf(w, "regate: warning: the command runs as your user and can still read the real value of secret %s from %s; %s\n",
		strings.Join(where, ", "), from, fix)
}

// printSecretUses is the run summary's line per secret and host.
func printSecretUses(w io.Writer, set *secrets.Set) {
	for _, u := range set.Uses() {
		fmt.Fprintf(w, "regate: secret %s sent in %d %s to %s\n", u.Name, u.Count, plural(u.Count, "request"), printable(u.Host))
	}
}
