//go:build !linux

// Command probe tries ways out of a sandbox; it works on Linux only.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "probe: Linux only")
	os.Exit(2)
}
