//go:build windows

package main

// notifySIGPIPE has nothing to do on Windows, which has no SIGPIPE: a write
// to a closed pipe is an error there already.
func notifySIGPIPE() {}
