//go:build unix

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// plant writes a file of exactly mode, as another local user could have
// created it before regate starts.
func plant(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// TestServeRefusesPlantedTokenFile: an admin token file others can read is
// refused before anything serves, naming the file.
func TestServeRefusesPlantedTokenFile(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	plant(t, token, "0123456789abcdef0123456789abcdef\n", 0o644)
	res := regate(t, nil, "serve", "--http", "127.0.0.1:0", "--socks", "127.0.0.1:0",
		"--admin", "127.0.0.1:0", "--admin-token-file", token)
	wantCode(t, res, 1)
	if !strings.Contains(res.stderr, token+" is readable by group or others") {
		t.Errorf("stderr does not name the token file:\n%s", res.stderr)
	}
}

// TestRunRefusesPlantedDecisionLog: a decision log others can write, or
// another user's, is refused (exit 125); a new one is created 0600.
func TestRunRefusesPlantedDecisionLog(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.jsonl")
	plant(t, open, "", 0o666)
	res := regate(t, nil, "run", "--decision-log", open, "--", "true")
	wantCode(t, res, 125)
	if !strings.Contains(res.stderr, open+" is writable by group or others") {
		t.Errorf("stderr does not name the decision log:\n%s", res.stderr)
	}
	if os.Geteuid() == 0 {
		theirs := filepath.Join(dir, "theirs.jsonl")
		plant(t, theirs, "", 0o600)
		if err := os.Chown(theirs, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		res := regate(t, nil, "run", "--decision-log", theirs, "--", "true")
		wantCode(t, res, 125)
		if !strings.Contains(res.stderr, theirs+" belongs to another user") {
			t.Errorf("stderr:\n%s", res.stderr)
		}
	} else {
		t.Log("not root: the another-user case is skipped")
	}
	created := filepath.Join(dir, "new.jsonl")
	wantCode(t, regate(t, nil, "run", "--decision-log", created, "--", "true"), 0)
	fi, err := os.Stat(created)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("new decision log mode %04o, want 0600", fi.Mode().Perm())
	}
}
