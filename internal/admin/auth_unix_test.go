//go:build unix

package admin

import (
	"github.com/regate/regate/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadTokenRefusesPlantedFile: an existing token file others can read,
// or another user's, is refused: its token may be known to them.
func TestLoadTokenRefusesPlantedFile(t *testing.T) {
	const token = "0123456789abcdef0123456789abcdef\n"
	tests := []struct {
		name  string
		mode  os.FileMode
		owner int // -1: ours
		want  string
	}{
		{"ours 0600", 0o600, -1, ""},
		{"world readable", 0o644, -1, "readable by group or others"},
		{"group writable", 0o620, -1, "writable by group or others"},
		{"another user's", 0o600, 65534, "belongs to another user"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.owner >= 0 && os.Geteuid() != 0 {
				testenv.Skip(t, "chown to another user needs root")
			}
			path := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			if tt.owner >= 0 {
				if err := os.Chown(path, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			got, _, err := LoadToken(path)
			if tt.want == "" {
				if err != nil || got != strings.TrimSpace(token) {
					t.Fatalf("LoadToken = %q, %v", got, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("LoadToken = %q, %v; want an error naming %s with %q", got, err, path, tt.want)
			}
		})
	}
}
