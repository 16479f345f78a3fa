package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
)

// Exit codes of `regate run` besides the child's own status.
const (
	exitRunFailed     = 125 // regate itself failed
	exitNotExecutable = 126
	exitNotFound      = 127
	exitSignalBase    = 128 // + the signal that killed the child
)

// lookCommand finds name as a shell would, mapping failures to 127 (not
// found) and 126 (found but not executable).
func lookCommand(name string) (string, error) {
	path, err := exec.LookPath(name)
	if err == nil {
		return path, nil
	}
	if errors.Is(err, fs.ErrPermission) {
		return "", withCode(exitNotExecutable, fmt.Errorf("%s: permission denied", name))
	}
	return "", withCode(exitNotFound, fmt.Errorf("%s: command not found", name))
}

// runChild starts argv (argv[0] resolved to path) with env and the standard
// streams, passes on to it the signals regate receives (child_unix.go,
// child_windows.go), and returns its exit code: its status, or on unix
// 128+N when signal N killed it.
func runChild(path string, argv, env []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdin, stdout, stderr
	cmd.SysProcAttr = childProcAttr()
	sigc := make(chan os.Signal, 8)
	signal.Notify(sigc, forwardedSignals...)
	defer signal.Stop(sigc)
	if err := cmd.Start(); err != nil {
		return startFailure(argv[0], err)
	}
	wait := func() (*os.ProcessState, error) { err := cmd.Wait(); return cmd.ProcessState, err }
	return supervise(cmd.Process, wait, sigc, stdin, argv[0])
}

// supervise passes the signals of sigc on to p until wait returns, and
// returns p's exit code.
func supervise(p *os.Process, wait func() (*os.ProcessState, error), sigc <-chan os.Signal, stdin io.Reader, name string) (int, error) {
	forward := forwarder(p, stdin)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigc:
				forward(sig)
			case <-done:
				return
			}
		}
	}()
	state, err := wait()
	close(done)
	if state == nil {
		return exitRunFailed, fmt.Errorf("waiting for %s: %w", name, err)
	}
	return exitStatus(state), nil
}

func startFailure(name string, err error) (int, error) {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return exitNotFound, fmt.Errorf("%s: %w", name, err)
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.ENOEXEC):
		return exitNotExecutable, fmt.Errorf("%s: %w", name, err)
	default:
		return exitRunFailed, fmt.Errorf("starting %s: %w", name, err)
	}
}
