//go:build !linux

package main

import "errors"

// residentBytes reads /proc, which only Linux has.
func residentBytes(int) (int64, error) {
	return 0, errors.New("the memory workload reads /proc: Linux only")
}

// openFiles reads /proc, which only Linux has.
func openFiles(int) (int, error) {
	return 0, errors.New("the memory workload reads /proc: Linux only")
}
