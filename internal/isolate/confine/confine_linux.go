package confine

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The bits of linux/securebits.h (x/sys/unix does not name them); each
// one's lock sits one above it.
const (
	secbitNoRoot                = 1 << 0
	secbitNoRootLocked          = 1 << 1
	secbitNoSetuidFixup         = 1 << 2
	secbitNoSetuidFixupLocked   = 1 << 3
	secbitKeepCapsLocked        = 1 << 5
	secbitNoCapAmbientRaise     = 1 << 6
	secbitNoCapAmbientRaiseLock = 1 << 7
)

// secureBits lock root out of its special meaning for good: uid 0 gains no
// capability on exec or setuid, the uid change keeps the capabilities
// until they are cleared explicitly, and none can be raised again.
const secureBits = secbitNoRoot | secbitNoRootLocked |
	secbitNoSetuidFixup | secbitNoSetuidFixupLocked |
	secbitKeepCapsLocked |
	secbitNoCapAmbientRaise | secbitNoCapAmbientRaiseLock

// Exec drops everything on the calling OS thread, in the order the kernel
// needs (securebits and the bounding set while CAP_SETPCAP is held, the
// ids while CAP_SETUID/CAP_SETGID are, then the capabilities themselves),
// sets no_new_privs, installs the seccomp filter and executes path. It
// returns only on error. The caller must hold runtime.LockOSThread: the
// capabilities, no_new_privs and the filter are the thread's, and exec
// keeps the calling thread's.
//
// The target and the filter are checked before anything changes; once a
// step has failed the process is half confined and must not run anything
// but its own exit.
func Exec(path string, argv, env []string, t Target) error {
	if err := t.validate(); err != nil {
		return err
	}
	prog, err := assemble()
	if err != nil {
		return err
	}
	if err := dropCapabilityBounds(); err != nil {
		return err
	}
	if err := setIDs(t); err != nil {
		return err
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
	if err := unix.Exec(path, argv, env); err != nil {
		return &ExecError{Path: path, Err: err}
	}
	return nil
}

// dropCapabilityBounds sets the securebits, empties the bounding set and
// clears the ambient and inheritable capabilities: everything that needs
// CAP_SETPCAP, or decides what a later exec may gain.
func dropCapabilityBounds() error {
	if err := unix.Prctl(unix.PR_SET_SECUREBITS, secureBits, 0, 0, 0); err != nil {
		return fmt.Errorf("setting securebits: %w", err)
	}
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
		if err != nil && !errors.Is(err, unix.EINVAL) {
			return fmt.Errorf("dropping capability %d from the bounding set: %w", c, err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clearing ambient capabilities: %w", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	if err := unix.Capget(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("reading capabilities: %w", err)
	}
	caps[0].Inheritable, caps[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &caps[0]); err != nil {
		return fmt.Errorf("clearing inheritable capabilities: %w", err)
	}
	return nil
}

// setIDs sets the supplementary groups (when asked), then the gid, then
// the uid: the gid and groups need CAP_SETGID, which the caller still
// holds because SECBIT_NO_SETUID_FIXUP keeps the capabilities across the
// uid change.
func setIDs(t Target) error {
	if t.SetGroups {
		if err := unix.Setgroups(t.Groups); err != nil {
			return fmt.Errorf("setting supplementary groups %v: %w", t.Groups, err)
		}
	}
	if err := unix.Setresgid(t.GID, t.GID, t.GID); err != nil {
		return fmt.Errorf("setting gid %d: %w", t.GID, err)
	}
	if err := unix.Setresuid(t.UID, t.UID, t.UID); err != nil {
		return fmt.Errorf("setting uid %d: %w", t.UID, err)
	}
	return nil
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
