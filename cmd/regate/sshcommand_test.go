package main

import (
	"github.com/regate/regate/internal/testenv"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// userSSHCommand chooses as git does: GIT_SSH_COMMAND, core.sshCommand,
// GIT_SSH, plain ssh.
func TestUserSSHCommand(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		testenv.Skip(t, "git not installed")
	}
	dir := t.TempDir()
	global := filepath.Join(dir, "gitconfig")
	if err := os.WriteFile(global, []byte("[core]\n\tsshCommand = ssh -i /keys/from-config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	none := filepath.Join(dir, "empty")
	if err := os.WriteFile(none, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GIT_CONFIG_NOSYSTEM=1"}
	t.Chdir(dir) // no repository's configuration
	for _, tc := range []struct {
		name string
		env  []string
		want string
	}{
		{"variable first", []string{"GIT_SSH_COMMAND=ssh -i /keys/from-env", "GIT_CONFIG_GLOBAL=" + global, "GIT_SSH=/usr/bin/plink"}, "ssh -i /keys/from-env"},
		{"then core.sshCommand", []string{"GIT_CONFIG_GLOBAL=" + global, "GIT_SSH=/usr/bin/plink"}, "ssh -i /keys/from-config"},
		{"then GIT_SSH, quoted", []string{"GIT_CONFIG_GLOBAL=" + none, "GIT_SSH=/opt/my ssh"}, "'/opt/my ssh'"},
		{"else plain ssh", []string{"GIT_CONFIG_GLOBAL=" + none}, ""},
		{"an empty variable is unset", []string{"GIT_SSH_COMMAND=", "GIT_CONFIG_GLOBAL=" + global}, "ssh -i /keys/from-config"},
	} {
		if got := userSSHCommand(t.Context(), append(base, tc.env...)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
