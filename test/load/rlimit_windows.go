package main

import "errors"

// raiseOpenFiles has no limit to raise on Windows; the memory workload,
// which needs it, reads memory from /proc and runs on Linux only.
func raiseOpenFiles() (int, error) {
	return 0, errors.New("no open-files limit on windows")
}
