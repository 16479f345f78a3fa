package confine

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
