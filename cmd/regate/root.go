package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Exit codes shared by the subcommands (run and decide add their own).
const (
	exitOK    = 0
	exitError = 1
)

// app is what every subcommand is wired with: the standard streams and the
// path of this binary (for git's SSH ProxyCommand).
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	self           string
}

// run executes one regate command line and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	self, err := os.Executable()
	if err != nil {
		self = ""
	}
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, self: self}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return a.exitCode(root.ExecuteContext(ctx))
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "regate",
		Short: "Run programs behind a proxy whose every connection is decided by Rego policy",
		Long: `regate routes every connection of a program through a local HTTP/SOCKS5
proxy; an embedded OPA decides each one from Rego policy and logs it in OPA's
decision-log format.`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		CompletionOptions: cobra.CompletionOptions{DisableDefaultCmd: true},
	}
	root.AddCommand(
		a.runCommand(),
		a.serveCommand(),
		a.decideCommand(),
		a.testCommand(),
		a.checkCommand(),
		a.versionCommand(),
		a.connectCommand(),
		a.suggestCommand(),
		a.replayCommand(),
	)
	return root
}

// exitErr carries a command's exit code; msg, if set, is printed once.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitErr) Unwrap() error { return e.err }

// withCode attaches an exit code to err; a nil err keeps the code silent.
func withCode(code int, err error) error { return &exitErr{code: code, err: err} }

// usageCode makes flag and argument errors of cmd exit with code.
func usageCode(cmd *cobra.Command, code int) {
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return withCode(code, fmt.Errorf("%w (see %s --help)", err, c.CommandPath()))
	})
}

// exitCode prints err (once, prefixed "regate: ") and maps it to a code.
func (a *app) exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	code := exitError
	var ee *exitErr
	if errors.As(err, &ee) {
		code = ee.code
		if ee.err == nil {
			return code
		}
	}
	msg := strings.TrimSpace(err.Error())
	msg = strings.ReplaceAll(msg, "\n", "\n  ")
	fmt.Fprintf(a.stderr, "regate: %s\n", msg)
	return code
}

// argsCode makes an argument error of v exit with code.
func argsCode(v cobra.PositionalArgs, code int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := v(cmd, args); err != nil {
			return withCode(code, fmt.Errorf("%w (see %s --help)", err, cmd.CommandPath()))
		}
		return nil
	}
}
