//go:build unix

package admin

import (
	"context"
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

func TestListenUnixDirectoryWritableByOthers(t *testing.T) {
	open := filepath.Join(shortTempDir(t), "open")
	if err := os.Mkdir(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil { // past the umask
		t.Fatal(err)
	}
	if _, err := Listen(context.Background(), "unix:"+filepath.Join(open, "a.sock")); err == nil || !strings.Contains(err.Error(), "writable by other users") {
		t.Fatalf("err = %v", err)
	}
}
