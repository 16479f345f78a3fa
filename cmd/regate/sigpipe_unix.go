//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// notifySIGPIPE makes a write to a closed pipe on standard output or error
// fail with EPIPE instead of ending regate (Go's default for those two
// descriptors while SIGPIPE is not notified): `regate serve --decision-log
// - | head` keeps serving and counts the events it could not write. The
// signal is handled, never ignored: a handled signal is reset to its
// default across exec, an ignored one would stay ignored in the child of
// `regate run`. Nothing reads c; signal.Notify never blocks on it.
func notifySIGPIPE() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGPIPE)
}
