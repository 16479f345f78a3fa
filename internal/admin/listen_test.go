package admin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestListenUnixPermissions(t *testing.T) {
	dir := filepath.Join(shortTempDir(t), "new")
	path := filepath.Join(dir, "admin.sock")
	l, err := Listen(context.Background(), "unix:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Addr().String(); got != path {
		t.Errorf("Addr = %q, want %q", got, path)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the socket", len(entries))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket left behind after Close: %v", err)
	}
}

func TestListenUnixExistingPath(t *testing.T) {
	ctx := context.Background()
	dir := shortTempDir(t)
	t.Run("stale socket is replaced", func(t *testing.T) {
		path := filepath.Join(dir, "stale.sock")
		old, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		old.(*net.UnixListener).SetUnlinkOnClose(false)
		_ = old.Close() // the file stays, nobody answers
		l, err := Listen(ctx, "unix:"+path)
		if err != nil {
			t.Fatalf("stale socket not replaced: %v", err)
		}
		_ = l.Close()
	})
	t.Run("live socket is refused", func(t *testing.T) {
		path := filepath.Join(dir, "live.sock")
		live, err := net.Listen("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		if _, err := Listen(ctx, "unix:"+path); err == nil || !strings.Contains(err.Error(), "another process") {
			t.Fatalf("err = %v, want another process is serving", err)
		}
	})
	t.Run("regular file is never removed", func(t *testing.T) {
		path := filepath.Join(dir, "file")
		if err := os.WriteFile(path, []byte("keep"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Listen(ctx, "unix:"+path); err == nil || !strings.Contains(err.Error(), "not a socket") {
			t.Fatalf("err = %v, want not a socket", err)
		}
		if b, _ := os.ReadFile(path); string(b) != "keep" {
			t.Fatal("the file was touched")
		}
	})
	t.Run("directory writable by others is refused", func(t *testing.T) {
		open := filepath.Join(dir, "open")
		if err := os.Mkdir(open, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(open, 0o777); err != nil { // past the umask
			t.Fatal(err)
		}
		if _, err := Listen(ctx, "unix:"+filepath.Join(open, "a.sock")); err == nil || !strings.Contains(err.Error(), "writable by other users") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("path too long", func(t *testing.T) {
		if _, err := Listen(ctx, "unix:/"+strings.Repeat("x", 120)); err == nil || !strings.Contains(err.Error(), "longer than") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestListenTCPLoopbackOnly(t *testing.T) {
	l, err := Listen(context.Background(), "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_ = l.Close()
	if ifaces, _ := net.InterfaceAddrs(); len(ifaces) > 1 {
		if l, err := Listen(context.Background(), "0.0.0.0:0"); err == nil {
			_ = l.Close()
			t.Fatal("listening on every interface was accepted")
		}
	}
}
