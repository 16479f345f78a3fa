//go:build unix

package private

import (
	"github.com/regate/regate/internal/testenv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheck: the owner and mode rules for secrets and logs, on files
// created with exactly the mode given.
func TestCheck(t *testing.T) {
	tests := []struct {
		name string
		mode os.FileMode
		rule Rule
		want string // "" when trusted
	}{
		{"secret 0600", 0o600, Secret, ""},
		{"secret 0400", 0o400, Secret, ""},
		{"secret 0644", 0o644, Secret, "readable by group or others (mode 0644); run chmod go-rw"},
		{"secret 0640", 0o640, Secret, "readable by group or others"},
		{"secret 0620", 0o620, Secret, "writable by group or others"},
		{"secret 0666", 0o666, Secret, "readable and writable by group or others"},
		{"secret 0700", 0o700, Secret, ""},
		{"log 0600", 0o600, Log, ""},
		{"log 0644", 0o644, Log, ""},
		{"log 0664", 0o664, Log, "writable by group or others (mode 0664); run chmod go-w"},
		{"log 0602", 0o602, Log, "writable by group or others"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tempFile(t, tt.mode)
			err := Check(f, tt.rule)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), f.Name()) {
				t.Fatalf("Check = %v, want an error naming %s with %q", err, f.Name(), tt.want)
			}
		})
	}
}

// TestCheckOwner: a file of another user is refused under either rule,
// whatever its mode. Changing a file's owner needs root; the case is
// skipped otherwise.
func TestCheckOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		testenv.Skip(t, "chown to another user needs root")
	}
	for _, rule := range []Rule{Secret, Log} {
		f := tempFile(t, 0o600)
		if err := os.Chown(f.Name(), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		err := Check(f, rule)
		if err == nil || !strings.Contains(err.Error(), "belongs to another user (uid 65534") {
			t.Errorf("rule %04o: Check = %v, want another user's file refused", rule, err)
		}
	}
}

// TestCheckDevice: a device belongs to root and its mode is not checked
// (/dev/null is 0666).
func TestCheckDevice(t *testing.T) {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		testenv.Skip(t, "%v", err)
	}
	defer f.Close()
	if err := Check(f, Log); err != nil {
		t.Fatalf("Check(%s) = %v", os.DevNull, err)
	}
}

// tempFile creates a file of exactly mode (whatever the umask), open.
func tempFile(t *testing.T, mode os.FileMode) *os.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "f")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return f
}
