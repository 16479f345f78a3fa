package config

import (
	"os"
	"path/filepath"
)

// DefaultAdmin is where serve's admin API listens unless told otherwise:
// on Windows loopback TCP port 8181 (OPA's), with the bearer token in
// %LOCALAPPDATA%\regate-admin.token, generated when missing. A per-user
// unix socket is the unix default; on Windows a TCP port with a token file
// under the user's profile (whose ACL admits only the user, SYSTEM and
// Administrators) is what every HTTP client can reach, and the token file
// needs no directory created first. "unix:PATH" still works when set.
func DefaultAdmin() Admin {
	dir := os.Getenv("LOCALAPPDATA")
	if dir == "" || !filepath.IsAbs(dir) {
		dir = os.TempDir()
	}
	return Admin{Addr: "127.0.0.1:8181", TokenFile: filepath.Join(dir, "regate-admin.token")}
}
