//go:build !linux

package isolate

import "errors"

// Available reports whether --isolate can work on this machine: never off
// Linux.
func Available() error {
	return errors.New("--isolate needs Linux namespaces; on macOS a Seatbelt profile that allows only the proxy's loopback ports is planned, on Windows nothing yet")
}
