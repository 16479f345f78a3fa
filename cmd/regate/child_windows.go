package main

import (
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// forwardedSignals are passed on to the child: Go reports both Ctrl-C and
// Ctrl-Break as os.Interrupt. (Closing the console, logoff and shutdown,
// reported as SIGTERM, reach every process on the console, the child
// included, without regate's help.)
var forwardedSignals = []os.Signal{os.Interrupt}

// childProcAttr starts the child in a process group of its own, so that
// regate can address it with GenerateConsoleCtrlEvent. Windows disables
// Ctrl-C in a new group, so the console's Ctrl-C reaches the child only
// through regate, once.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

// forwarder sends Ctrl-Break to the child's process group (a group cannot
// be sent Ctrl-C). A Ctrl-Break typed on the console reaches the child
// directly as well, so that one arrives twice.
func forwarder(p *os.Process, _ io.Reader) func(os.Signal) {
	return func(os.Signal) {
		// Fails without a console (a service); the child then has none to
		// receive it either.
		_ = windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.Pid))
	}
}

// exitStatus is the child's exit code (a process ended by Ctrl-Break
// reports STATUS_CONTROL_C_EXIT, 0xC000013A).
func exitStatus(ps *os.ProcessState) int { return ps.ExitCode() }
