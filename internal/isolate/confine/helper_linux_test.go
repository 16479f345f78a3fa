package confine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/regate/regate/internal/testenv"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

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
		testenv.Skip(t, "mapping more than one uid needs root (CI runs as root)")
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
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EINVAL) ||
			errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EUSERS) {
			testenv.Skip(t, "user namespaces are not available: %v", err)
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
