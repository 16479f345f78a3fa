package config

import (
	"path/filepath"
	"testing"
)

func TestDefaultAdmin(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("LOCALAPPDATA", dir)
	want := Admin{Addr: "127.0.0.1:8181", TokenFile: filepath.Join(dir, "regate-admin.token")}
	if got := DefaultAdmin(); got != want {
		t.Errorf("DefaultAdmin() = %+v, want %+v", got, want)
	}
	cfg, err := Load(Options{Mode: ModeServe})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Admin != want {
		t.Errorf("serve's admin = %+v, want %+v", cfg.Admin, want)
	}
}
