package confine

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// status is /proc/self/status as cat printed it, by field.
func status(t *testing.T, out string) map[string]string {
	t.Helper()
	s := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			s[k] = strings.TrimSpace(v)
		}
	}
	if _, ok := s["CapEff"]; !ok {
		t.Fatalf("no /proc/self/status in the output:\n%s", out)
	}
	return s
}

// checkConfined asserts what every confined process shows: no
// capability in any set, no_new_privs, one seccomp filter, and the ids.
func checkConfined(t *testing.T, s map[string]string, uid, gid int) {
	t.Helper()
	for _, f := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
		if s[f] != "0000000000000000" {
			t.Errorf("%s: %q, want none", f, s[f])
		}
	}
	if s["NoNewPrivs"] != "1" {
		t.Errorf("NoNewPrivs: %q, want 1", s["NoNewPrivs"])
	}
	if s["Seccomp"] != "2" {
		t.Errorf("Seccomp: %q, want 2 (filter)", s["Seccomp"])
	}
	if f, ok := s["Seccomp_filters"]; ok && f != "1" {
		t.Errorf("Seccomp_filters: %q, want 1", f)
	}
	ids := func(id int) string { return fmt.Sprintf("%d\t%d\t%d\t%d", id, id, id, id) }
	if s["Uid"] != ids(uid) {
		t.Errorf("Uid: %q, want %q", s["Uid"], ids(uid))
	}
	if s["Gid"] != ids(gid) {
		t.Errorf("Gid: %q, want %q", s["Gid"], ids(gid))
	}
}

// TestExecConfines executes cat /proc/self/status through Exec and reads
// the confinement from the kernel's own account.
func TestExecConfines(t *testing.T) {
	for _, c := range []struct {
		name       string
		ns         userns
		target     Target
		wantGroups string // "-": not checked
	}{
		{"root of an unprivileged namespace", rootOnly, Target{}, "-"},
		{"nobody, groups set", withNobody, Target{UID: 65534, GID: 65534, Groups: []int{65534}, SetGroups: true}, "65534"},
		{"nobody, groups cleared", withNobody, Target{UID: 65534, GID: 65534, SetGroups: true}, ""},
		{"root, groups cleared", withNobody, Target{SetGroups: true}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := mustHelper(t, c.ns, "confine", "", c.target, "/bin/cat", "/proc/self/status")
			s := status(t, out)
			checkConfined(t, s, c.target.UID, c.target.GID)
			if c.wantGroups != "-" && s["Groups"] != c.wantGroups {
				t.Errorf("Groups: %q, want %q", s["Groups"], c.wantGroups)
			}
		})
	}
}

// TestConfinedCalls executes this binary through Exec as a probe: the
// filter's refusals, what no capability forbids, the locked securebits,
// then a second exec (of cat) from inside that gains nothing back. It
// runs as root of a namespace where 65534 is mapped too, so that
// changing to it fails for want of CAP_SETUID, not of a mapping.
func TestConfinedCalls(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := mustHelper(t, withNobody, "confine", "probe", Target{},
		self, "-test.run=^TestHelperProcess$", "--", "/bin/cat", "/proc/self/status")
	want := map[string]string{
		"probe socket AF_VSOCK":              "EAFNOSUPPORT",
		"probe socketpair AF_VSOCK":          "EAFNOSUPPORT",
		"probe socket AF_INET":               "ok",
		"probe socketpair AF_UNIX":           "ok",
		"probe ptrace PTRACE_PEEKDATA":       "EPERM",
		"probe io_uring_setup":               "EPERM",
		"probe keyctl KEYCTL_GET_KEYRING_ID": "EPERM",
		"probe bpf BPF_PROG_LOAD":            "EPERM",
		"probe mount tmpfs":                  "EPERM",
		"probe unshare CLONE_NEWNET":         "EPERM",
		"probe prctl PR_CAP_AMBIENT_RAISE":   "EPERM",
		"probe prctl PR_SET_SECUREBITS 0":    "EPERM",
		"probe prctl PR_GET_SECUREBITS":      fmt.Sprintf("%#x", secureBits),
		"probe prctl PR_GET_NO_NEW_PRIVS":    "0x1",
		"probe setresuid 65534":              "EPERM",
		"probe x32 getpid":                   "EPERM",
	}
	if x32Bit == 0 {
		want["probe x32 getpid"] = "no x32"
	}
	for name := range refusedWithEPERM {
		if name != "ptrace" {
			want["call "+name] = "EPERM"
		}
	}
	got := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok && (strings.HasPrefix(k, "probe ") || strings.HasPrefix(k, "call ")) {
			got[k] = v
		}
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	checkConfined(t, status(t, out), 0, 0)
}

// TestSetuidGainsNothing executes a set-user-ID-root copy of cat as
// nobody: without Exec it runs as root (the control, so that the fixture
// is known to work); through Exec, no_new_privs keeps it nobody.
func TestSetuidGainsNothing(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	suid := filepath.Join(dir, "cat")
	copyFile(t, "/bin/cat", suid)
	if err := os.Chmod(suid, 0o755|os.ModeSetuid); err != nil {
		t.Fatal(err)
	}
	nobody := Target{UID: 65534, GID: 65534, SetGroups: true}

	s := status(t, mustHelper(t, withNobody, "plain", "", nobody, suid, "/proc/self/status"))
	if s["Uid"] != "65534\t0\t0\t0" {
		t.Fatalf("the set-user-ID fixture does not work here (a nosuid %s?): Uid %q", dir, s["Uid"])
	}

	s = status(t, mustHelper(t, withNobody, "confine", "", nobody, suid, "/proc/self/status"))
	checkConfined(t, s, 65534, 65534)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestExecReportsFailures: a step that fails is returned, wrapped with
// what was being done, and nothing is executed.
func TestExecReportsFailures(t *testing.T) {
	for _, c := range []struct {
		name   string
		target Target
		path   string
		want   string
	}{
		{"uid not mapped", Target{UID: 4242}, "/bin/true", "setting uid 4242: invalid argument"},
		{"gid not mapped", Target{GID: 4242}, "/bin/true", "setting gid 4242: invalid argument"},
		{"setgroups denied", Target{SetGroups: true}, "/bin/true", "setting supplementary groups []: operation not permitted"},
		{"groups not set", Target{Groups: []int{1}}, "/bin/true", "checking the target: groups are given but SetGroups is false"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := helper(t, rootOnly, "confine", "", c.target, c.path)
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 3 {
				t.Fatalf("helper: %v, want exit status 3\n%s", err, out)
			}
			if want := "helper error: " + c.want + "\n"; out != want {
				t.Errorf("output %q, want %q", out, want)
			}
		})
	}
}

// TestFailedExecLeavesNothing: when only the exec itself fails, the
// error says so and the thread it returns on is already confined (the
// capabilities are cleared by capset, not only by the exec).
func TestFailedExecLeavesNothing(t *testing.T) {
	out, err := helper(t, rootOnly, "confine", "thread-status", Target{}, "/nonexistent")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("helper: %v, want exit status 3\n%s", err, out)
	}
	if want := "\nhelper error: executing /nonexistent: no such file or directory\n"; !strings.HasSuffix(out, want) {
		t.Errorf("output %q, want it to end in %q", out, want)
	}
	checkConfined(t, status(t, out), 0, 0)
}
