//go:build unix

package main

import (
	"os"
	"os/signal"
	"syscall"
)

// notifyReload relays SIGHUP, which makes `regate serve` reload its policy,
// to c.
func notifyReload(c chan<- os.Signal) { signal.Notify(c, syscall.SIGHUP) }
