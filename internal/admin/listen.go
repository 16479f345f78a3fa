package admin

import (
	"context"
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

// maxSocketPath is the longest unix socket path the platform accepts
// (sun_path less its terminating NUL: 107 bytes on Linux and Windows, 103
// on macOS).
const maxSocketPath = len(syscall.RawSockaddrUnix{}.Path) - 1

// IsUnix reports whether addr names a unix socket ("unix:PATH").
func IsUnix(addr string) bool { return strings.HasPrefix(addr, "unix:") }

// Listen opens the admin listener: "unix:PATH" (a stale socket nobody
// answers on is replaced, anything else at PATH is an error; ensureDir and
// bindSocket say per platform how the socket is restricted: on unix mode
// 0600 in a directory only this user can write) or a loopback HOST:PORT.
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
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("opening admin socket %s: path longer than %d bytes", path, maxSocketPath)
	}
	if err := ensureDir(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("opening admin socket %s: %w", path, err)
	}
	if err := checkStale(ctx, path); err != nil {
		return nil, fmt.Errorf("opening admin socket %s: %w", path, err)
	}
	ul, err := bindSocket(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("opening admin socket %s: %w", path, err)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		_ = ul.Close()
		return nil, fmt.Errorf("opening admin socket %s: %w", path, err)
	}
	return &unixListener{UnixListener: ul, addr: &net.UnixAddr{Name: path, Net: "unix"}, fi: fi}, nil
}

// checkStale accepts a missing path and a socket nobody answers on (the
// bind replaces it); a live socket or any other file is an error.
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
	if isRefused(err) {
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

// ensureDir creates dir (mode 0700) when missing; an existing one must be
// a directory that checkDir (listen_unix.go, listen_windows.go) accepts, so
// that nobody else can replace the socket.
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
	return checkDir(dir, fi)
}
