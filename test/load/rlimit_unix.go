//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseOpenFiles raises this process's soft limit of open files to its
// hard limit, for itself and the servers it starts (which inherit it),
// and returns the limit.
func raiseOpenFiles() (int, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("reading the open-files limit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("raising the open-files limit: %w", err)
	}
	return int(min(lim.Cur, 1<<30)), nil
}
