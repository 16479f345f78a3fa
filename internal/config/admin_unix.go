//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strconv"
)

// DefaultAdmin is where serve's admin API listens unless told otherwise:
// the unix socket $XDG_RUNTIME_DIR/regate/admin.sock, else
// $TMPDIR/regate-UID/admin.sock ($TMPDIR is per user on macOS).
func DefaultAdmin() Admin {
	return Admin{Addr: "unix:" + defaultAdminSocket()}
}

func defaultAdminSocket() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" && filepath.IsAbs(dir) {
		return filepath.Join(dir, "regate", "admin.sock")
	}
	return filepath.Join(os.TempDir(), "regate-"+strconv.Itoa(os.Getuid()), "admin.sock")
}
