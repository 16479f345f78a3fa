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
	"strings"
	"sync"
	"syscall"
	"time"
)

// maxSocketPath is the longest unix socket path Linux accepts.
const maxSocketPath = 107

// IsUnix reports whether addr names a unix socket ("unix:PATH").
func IsUnix(addr string) bool { return strings.HasPrefix(addr, "unix:") }

// Listen opens the admin listener: "unix:PATH" (socket mode 0600, its
// directory created 0700 when missing; a stale socket nobody answers on is
// replaced, anything else at PATH is an error) or a loopback HOST:PORT.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		return listenUnix(ctx, path)
	}
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("opening admin listener: %w", err)
	}
	if a, ok := l.Addr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		_ = l.Close()
		return nil, fmt.Errorf("opening admin listener: %s is not a loopback address", l.Addr())
	}
	return l, nil
}

func listenUnix(ctx context.Context, path string) (net.Listener, error) {
	if !filepath.IsAbs(path) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, fmt.Errorf("opening admin socket: %w", err)
		}
		path = abs
	}
	dir := filepath.Dir(path)
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	tmp := filepath.Join(dir, ".regate-"+hex.EncodeToString(rnd[:]))
	if len(path) > maxSocketPath || len(tmp) > maxSocketPath {
		return nil, fmt.Errorf("opening admin socket %s: path longer than %d bytes", path, maxSocketPath)
	}
	if err := ensureDir(dir); err != nil {
		return nil, fmt.Errorf("opening admin socket %s: %w", path, err)
	}
	if err := checkStale(ctx, path); err != nil {
		return nil, fmt.Errorf("opening admin socket %s: %w", path, err)
	}
	// Bind under a temporary name, restrict it, then rename it into place:
	// the socket is never reachable with a wider mode, and a stale one is
	// replaced atomically.
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("opening admin socket %s: %w", path, err)
	}
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	fail := func(err error) (net.Listener, error) {
		_ = ul.Close()
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("opening admin socket %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		return fail(err)
	}
	return &unixListener{UnixListener: ul, addr: &net.UnixAddr{Name: path, Net: "unix"}, fi: fi}, nil
}

// ensureDir creates dir (mode 0700) when missing; an existing one must be a
// directory owned by this user or root, and not writable by others unless
// sticky (/tmp), so that nobody else can replace the socket.
func ensureDir(dir string) error {
	fi, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("creating directory: %w", err)
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != uint32(os.Getuid()) && st.Uid != 0 {
		return fmt.Errorf("directory %s belongs to another user (uid %d)", dir, st.Uid)
	}
	if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
		return fmt.Errorf("directory %s is writable by other users", dir)
	}
	return nil
}

// checkStale accepts a missing path and a socket nobody answers on (the
// rename replaces it); a live socket or any other file is an error.
func checkStale(ctx context.Context, path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return errors.New("the path exists and is not a socket")
	}
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err == nil {
		_ = c.Close()
		return errors.New("another process is serving on the socket (is regate serve already running? set --admin)")
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return nil // stale: its server is gone
	}
	return fmt.Errorf("probing existing socket: %w", err)
}

// unixListener reports the socket's final path and removes it on Close,
// unless it has been replaced since.
type unixListener struct {
	*net.UnixListener
	addr *net.UnixAddr
	fi   os.FileInfo
	once sync.Once
}

func (l *unixListener) Addr() net.Addr { return l.addr }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		if fi, statErr := os.Lstat(l.addr.Name); statErr == nil && os.SameFile(fi, l.fi) {
			_ = os.Remove(l.addr.Name)
		}
	})
	return err
}
