//go:build unix

package config

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestDefaultAdmin(t *testing.T) {
	runtime, tmp := t.TempDir(), t.TempDir()
	tests := []struct {
		name, xdg string
		want      Admin
	}{
		{name: "XDG_RUNTIME_DIR", xdg: runtime, want: Admin{Addr: "unix:" + filepath.Join(runtime, "regate", "admin.sock")}},
		{name: "TMPDIR without XDG_RUNTIME_DIR", want: Admin{Addr: "unix:" + filepath.Join(tmp, "regate-"+strconv.Itoa(os.Getuid()), "admin.sock")}},
		{name: "relative XDG_RUNTIME_DIR ignored", xdg: "run", want: Admin{Addr: "unix:" + filepath.Join(tmp, "regate-"+strconv.Itoa(os.Getuid()), "admin.sock")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_RUNTIME_DIR", tt.xdg)
			t.Setenv("TMPDIR", tmp)
			if got := DefaultAdmin(); got != tt.want {
				t.Errorf("DefaultAdmin() = %+v, want %+v", got, tt.want)
			}
		})
	}
}
