package main

import "os"

// notifyReload does nothing: Windows has no SIGHUP, so `regate serve`
// reloads local policy only when the file watch sees a change.
// (signal.Notify with no signals would relay every signal.)
func notifyReload(chan<- os.Signal) {}
