package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"syscall"

	"golang.org/x/sys/windows"
)

// checkDir accepts a directory owned by this user, SYSTEM or
// Administrators (a missing one inherits its parent's ACL; Windows has no
// mode bits to set). Its ACL is not inspected: who else may create files
// in it is whatever the ACL grants, so keep the socket under the user's
// profile (%LOCALAPPDATA%), whose ACL admits only the user, SYSTEM and
// Administrators.
func checkDir(dir string, _ fs.FileInfo) error { return checkOwner(dir) }

// checkOwner refuses a directory owned by another user.
func checkOwner(dir string) error {
	sd, err := windows.GetNamedSecurityInfo(dir, windows.SE_FILE_OBJECT, windows.OWNER_SECURITY_INFORMATION)
	if err != nil {
		return fmt.Errorf("reading the owner of %s: %w", dir, err)
	}
	owner, _, err := sd.Owner()
	if err != nil {
		return fmt.Errorf("reading the owner of %s: %w", dir, err)
	}
	if owner.IsWellKnown(windows.WinLocalSystemSid) || owner.IsWellKnown(windows.WinBuiltinAdministratorsSid) {
		return nil
	}
	me, err := windows.GetCurrentProcessToken().GetTokenUser()
	if err != nil {
		return fmt.Errorf("reading the current user: %w", err)
	}
	if !owner.Equals(me.User.Sid) {
		return fmt.Errorf("directory %s belongs to another user (%s)", dir, owner)
	}
	return nil
}

// bindSocket removes a stale socket (checkStale found nobody answering) and
// binds at path. There is no mode to restrict first, so nothing is gained
// by binding under a temporary name and renaming as on unix.
func bindSocket(ctx context.Context, path string) (*net.UnixListener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("removing stale socket: %w", err)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	return ul, nil
}

// isRefused reports whether dialing a socket failed because nobody listens
// (Winsock's own error number, not syscall's invented ECONNREFUSED).
func isRefused(err error) bool {
	return errors.Is(err, windows.WSAECONNREFUSED) || errors.Is(err, syscall.ECONNREFUSED)
}
