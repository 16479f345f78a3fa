//go:build linux && !amd64 && !arm64

package confine

// No filter is built for other architectures: Exec then fails closed.
const (
	auditArch = 0
	x32Bit    = 0
)
