//go:build unix

package admin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// checkDir accepts a directory owned by this user or root, and not
// writable by others unless sticky (/tmp).
func checkDir(dir string, fi fs.FileInfo) error {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != uint32(os.Getuid()) && st.Uid != 0 {
		return fmt.Errorf("directory %s belongs to another user (uid %d)", dir, st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("directory %s is writable by other users", dir)
	}
	return nil
}

// bindSocket binds under a temporary name, restricts it to mode 0600, then
// renames it into place: the socket is never reachable with a wider mode,
// and a stale one is replaced atomically.
func bindSocket(ctx context.Context, path string) (*net.UnixListener, error) {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(filepath.Dir(path), ".regate-"+hex.EncodeToString(rnd[:]))
	if len(tmp) > maxSocketPath {
		return nil, fmt.Errorf("path longer than %d bytes", maxSocketPath)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", tmp)
	if err != nil {
		return nil, err
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		_ = ul.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = ul.Close()
		_ = os.Remove(tmp)
		return nil, err
	}
	return ul, nil
}

// isRefused reports whether dialing a socket failed because nobody listens.
func isRefused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }
