package admin

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

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
