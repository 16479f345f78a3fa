package confine

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// secureBits lock root out of its special meaning for good: uid 0 gains no
// capability on exec or setuid, and no capability can be raised again.
// (linux/securebits.h: each bit, and its lock one above it.)
const secureBits = 1<<0 | 1<<1 | // SECBIT_NOROOT, _LOCKED
	1<<2 | 1<<3 | // SECBIT_NO_SETUID_FIXUP, _LOCKED
	1<<5 | // SECBIT_KEEP_CAPS_LOCKED
	1<<6 | 1<<7 // SECBIT_NO_CAP_AMBIENT_RAISE, _LOCKED

// Exec drops everything on the calling OS thread, in the order the kernel
// needs (securebits and the bounding set while CAP_SETPCAP is held, the
// ids while CAP_SETUID/CAP_SETGID are, then the capabilities themselves),
// sets no_new_privs, installs the seccomp filter (assembled before
// anything changes) and executes path. It
// returns only on error. The caller must hold runtime.LockOSThread: the
// capabilities, no_new_privs and the filter are the thread's, and exec
// keeps the calling thread's.
func Exec(path string, argv, env []string, t Target) error {
	prog, err := assemble()
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, secureBits, 0, 0, 0); err != nil {
		return fmt.Errorf("setting securebits: %w", err)
	}
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil && err != unix.EINVAL {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	if t.SetGroups {
		if err := unix.Setgroups(nil); err != nil {
			return fmt.Errorf("clearing supplementary groups: %w", err)
		}
	}
	if err := unix.Setresgid(t.GID, t.GID, t.GID); err != nil {
		return fmt.Errorf("setting gid %d: %w", t.GID, err)
	}
	if err := unix.Setresuid(t.UID, t.UID, t.UID); err != nil {
		return fmt.Errorf("setting uid %d: %w", t.UID, err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var none [2]unix.CapUserData
	if err := unix.Capset(&hdr, &none[0]); err != nil {
		return fmt.Errorf("dropping capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("setting no_new_privs: %w", err)
	}
	if err := install(prog); err != nil {
		return err
	}
	return unix.Exec(path, argv, env)
}

// lastCap is the highest capability this kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, fmt.Errorf("reading the last capability: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("reading the last capability: %w", err)
	}
	return n, nil
}
