//go:build unix

package main

import (
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// forwardedSignals are passed on to the child.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP}

// childProcAttr keeps the child in regate's process group, so that the
// terminal's Ctrl-C reaches it directly.
func childProcAttr() *syscall.SysProcAttr { return nil }

// forwarder passes each signal on to the child, except the SIGINT that the
// terminal has already delivered to it.
func forwarder(p *os.Process, stdin io.Reader) func(os.Signal) {
	ttyDelivers := sharesForegroundTerminal(stdin)
	return func(sig os.Signal) {
		if sig == syscall.SIGINT && ttyDelivers {
			return // Ctrl-C already reached the child from the terminal
		}
		_ = p.Signal(sig)
	}
}

// sharesForegroundTerminal reports whether stdin is a terminal whose
// foreground process group is ours, which the child inherits: the terminal
// then sends Ctrl-C's SIGINT to the child itself, and forwarding it too would
// deliver it twice (many interactive programs exit on a second Ctrl-C).
func sharesForegroundTerminal(stdin io.Reader) bool {
	f, ok := stdin.(*os.File)
	if !ok {
		return false
	}
	pgrp, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// exitStatus is the shell's view of how the child ended: its status, or
// 128+N when signal N killed it.
func exitStatus(ps *os.ProcessState) int {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return exitSignalBase + int(ws.Signal())
	}
	return ps.ExitCode()
}
