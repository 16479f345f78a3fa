package confine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The helper process (TestHelperProcess) reads what to do from these.
const (
	envMode   = "CONFINE_TEST_MODE"   // confine, plain or probe
	envTarget = "CONFINE_TEST_TARGET" // the Target, in JSON
	envThen   = "CONFINE_TEST_THEN"   // the mode of the program confine executes, or thread-status
)

// helperTimeout bounds a helper: a confinement that lets a call through
// may leave it waiting (a tracer, a socket), which must fail, not hang.
const helperTimeout = 30 * time.Second

// userns is the user namespace a helper runs in, as root with every
// capability there.
type userns int

const (
	// rootOnly maps the caller's uid and gid to 0 and denies setgroups,
	// as an unprivileged caller's namespace is.
	rootOnly userns = iota
	// withNobody maps 0 and 65534 to themselves and allows setgroups,
	// which only a caller that is root on the host can do.
	withNobody
)

func (u userns) attr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS}
	switch u {
	case rootOnly:
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	case withNobody:
		a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: 65534, HostID: 65534, Size: 1}}
		a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: 65534, HostID: 65534, Size: 1}}
		a.GidMappingsEnableSetgroups = true
	}
	return a
}

// helper runs this test binary as TestHelperProcess in mode, in a new
// user and mount namespace, with the target and argv (the program the
// helper executes), and returns what it wrote. A namespace the kernel
// refuses skips the test, except in CI.
func helper(t *testing.T, ns userns, mode, then string, target Target, argv ...string) (string, error) {
	t.Helper()
	if ns == withNobody && os.Getuid() != 0 {
		if os.Getenv("CI") != "" {
			t.Fatal("mapping more than one uid needs root, and CI runs as root")
		}
		t.Skip("mapping more than one uid needs root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tj, err := json.Marshal(target)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), helperTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, append([]string{"-test.run=^TestHelperProcess$", "--"}, argv...)...)
	cmd.Env = append(os.Environ(), envMode+"="+mode, envTarget+"="+string(tj), envThen+"="+then)
	cmd.SysProcAttr = ns.attr()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		if os.Getenv("CI") == "" && (errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) ||
			errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EUSERS)) {
			t.Skipf("user namespaces are not available: %v", err)
		}
		t.Fatalf("starting the helper in a user namespace: %v", err)
	}
	err = cmd.Wait()
	return out.String(), err
}

// mustHelper is helper for a run that must succeed.
func mustHelper(t *testing.T, ns userns, mode, then string, target Target, argv ...string) string {
	t.Helper()
	out, err := helper(t, ns, mode, then, target, argv...)
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	return out
}

// TestHelperProcess is no test: it is the helper process of the tests
// here, doing what envMode says, and does nothing in a normal run.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(envMode)
	if mode == "" {
		return
	}
	var argv []string
	for i, a := range os.Args {
		if a == "--" {
			argv = os.Args[i+1:]
			break
		}
	}
	var err error
	switch mode {
	case "confine":
		err = helperConfine(argv)
	case "plain":
		err = helperPlain(argv)
	case "probe":
		err = helperProbe(argv)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	fmt.Printf("helper error: %v\n", err)
	os.Exit(3)
}

// helperTarget is the Target the test passed.
func helperTarget() (Target, error) {
	var target Target
	err := json.Unmarshal([]byte(os.Getenv(envTarget)), &target)
	return target, err
}

// helperConfine executes argv through Exec, the program then running in
// mode envThen.
func helperConfine(argv []string) error {
	target, err := helperTarget()
	if err != nil {
		return err
	}
	if len(argv) == 0 {
		return errors.New("no program")
	}
	env := []string{envMode + "=" + os.Getenv(envThen)}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envMode+"=") {
			env = append(env, kv)
		}
	}
	runtime.LockOSThread()
	err = Exec(argv[0], argv, env, target)
	if os.Getenv(envThen) == "thread-status" {
		// What the thread is left with when Exec failed: capabilities and
		// the filter are the thread's.
		b, rerr := os.ReadFile("/proc/thread-self/status")
		if rerr != nil {
			return errors.Join(err, rerr)
		}
		os.Stdout.Write(b)
	}
	return err
}

// helperPlain executes argv as the target's ids without confining it:
// the control that shows a fixture would gain privileges.
func helperPlain(argv []string) error {
	target, err := helperTarget()
	if err != nil {
		return err
	}
	if err := unix.Setresgid(target.GID, target.GID, target.GID); err != nil {
		return err
	}
	if err := unix.Setresuid(target.UID, target.UID, target.UID); err != nil {
		return err
	}
	return unix.Exec(argv[0], argv, os.Environ())
}

// probes are what helperProbe tries from inside the confinement, each
// returning "ok", an errno's name, or a value.
var probes = []struct {
	name string
	try  func() string
}{
	{"socket AF_VSOCK", func() string { return socket(unix.AF_VSOCK) }},
	{"socketpair AF_VSOCK", func() string { return socketpair(unix.AF_VSOCK) }},
	{"socket AF_INET", func() string { return socket(unix.AF_INET) }},
	{"socketpair AF_UNIX", func() string { return socketpair(unix.AF_UNIX) }},
	{"ptrace PTRACE_PEEKDATA", func() string {
		// Not PTRACE_TRACEME: were it allowed, the next exec would stop
		// for a tracer that never comes. Peeking at a process not traced
		// is ESRCH when allowed.
		_, _, e := unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_PEEKDATA, uintptr(os.Getppid()), 0, 0, 0, 0)
		return result(errnoErr(e))
	}},
	{"io_uring_setup", func() string {
		var params [120]byte // struct io_uring_params, zero
		r, _, e := unix.Syscall(unix.SYS_IO_URING_SETUP, 1, uintptr(unsafe.Pointer(&params[0])), 0)
		return closing(int(r), e)
	}},
	{"keyctl KEYCTL_GET_KEYRING_ID", func() string {
		_, err := unix.KeyctlInt(unix.KEYCTL_GET_KEYRING_ID, unix.KEY_SPEC_SESSION_KEYRING, 1, 0, 0)
		return result(err)
	}},
	{"bpf BPF_PROG_LOAD", func() string {
		_, _, e := unix.Syscall(unix.SYS_BPF, unix.BPF_PROG_LOAD, 0, 0)
		return result(errnoErr(e))
	}},
	{"mount tmpfs", func() string { return result(unix.Mount("none", os.TempDir(), "tmpfs", 0, "")) }},
	{"unshare CLONE_NEWNET", func() string { return result(unix.Unshare(unix.CLONE_NEWNET)) }},
	{"prctl PR_CAP_AMBIENT_RAISE", func() string {
		return result(unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, unix.CAP_NET_ADMIN, 0, 0))
	}},
	{"prctl PR_SET_SECUREBITS 0", func() string { return result(unix.Prctl(unix.PR_SET_SECUREBITS, 0, 0, 0, 0)) }},
	{"prctl PR_GET_SECUREBITS", func() string { return value(unix.PrctlRetInt(unix.PR_GET_SECUREBITS, 0, 0, 0, 0)) }},
	{"prctl PR_GET_NO_NEW_PRIVS", func() string { return value(unix.PrctlRetInt(unix.PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0)) }},
	{"setresuid 65534", func() string { return result(unix.Setresuid(65534, 65534, 65534)) }},
	{"x32 getpid", func() string {
		if x32Bit == 0 {
			return "no x32"
		}
		_, _, e := unix.Syscall(x32Bit|39, 0, 0, 0) // 39: getpid
		return result(errnoErr(e))
	}},
}

// helperProbe prints "probe NAME: RESULT" for each probe, every refused
// call of refusedWithEPERM tried with zero arguments as "call NAME:
// RESULT", then executes argv (a second exec, from inside).
func helperProbe(argv []string) error {
	for _, p := range probes {
		fmt.Printf("probe %s: %s\n", p.name, p.try())
	}
	for name, nr := range refusedWithEPERM {
		if nr == unix.SYS_PTRACE {
			continue // ptrace(0, …) is PTRACE_TRACEME: see the probe
		}
		_, _, e := unix.Syscall6(uintptr(nr), 0, 0, 0, 0, 0, 0)
		fmt.Printf("call %s: %s\n", name, result(errnoErr(e)))
	}
	return unix.Exec(argv[0], argv, os.Environ())
}

func socket(domain int) string {
	fd, err := unix.Socket(domain, unix.SOCK_STREAM, 0)
	return closing(fd, errnoOf(err))
}

func socketpair(domain int) string {
	fds, err := unix.Socketpair(domain, unix.SOCK_STREAM, 0)
	if err == nil {
		unix.Close(fds[1])
	}
	return closing(fds[0], errnoOf(err))
}

func closing(fd int, e syscall.Errno) string {
	if e != 0 {
		return result(e)
	}
	unix.Close(fd)
	return "ok"
}

func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

func errnoErr(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func result(err error) string {
	var e syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &e):
		return unix.ErrnoName(e)
	}
	return err.Error()
}

func value(v int, err error) string {
	if err != nil {
		return result(err)
	}
	return fmt.Sprintf("%#x", v)
}

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
