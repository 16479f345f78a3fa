package isolate

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// resolvConf points name lookups at resolver: regate's own on the TUN
// link, or 127.0.0.1 where nothing answers, so that they fail at once.
func resolvConf(resolver string) string {
	return "# regate --isolate: no query leaves the sandbox\nnameserver " + resolver + "\noptions timeout:1 attempts:2\n"
}

// mountProcAndSys mounts a /proc of the new PID namespace (regate and the
// host's processes are not in it) and a /sys of the new network namespace
// (the host's interfaces are not listed), or an empty /sys where sysfs
// cannot be mounted.
func mountProcAndSys() error {
	const flags = unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC
	if err := unix.Mount("proc", "/proc", "proc", flags, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", flags|unix.MS_RDONLY, ""); err != nil {
		if err := unix.Mount("tmpfs", "/sys", "tmpfs", flags|unix.MS_RDONLY, "size=4k,mode=555"); err != nil {
			return fmt.Errorf("mounting /sys: %w", err)
		}
	}
	return nil
}

// bindResolvConf binds a resolv.conf over /etc/resolv.conf, read-only.
// The file lives on a tmpfs mounted nowhere (the new mount API), so
// nothing is left behind on any file system.
func bindResolvConf(resolver string) error {
	target, err := filepath.EvalSymlinks("/etc/resolv.conf")
	if errors.Is(err, os.ErrNotExist) {
		return nil // nothing to replace: lookups have no server anyway
	}
	if err != nil {
		return fmt.Errorf("binding resolv.conf: %w", err)
	}
	if err := bindContent(target, "resolv.conf", resolvConf(resolver)); err != nil {
		return fmt.Errorf("binding resolv.conf: %w", err)
	}
	return nil
}

// bindContent mounts a file holding content, read-only, over target.
func bindContent(target, name, content string) error {
	fsfd, err := unix.Fsopen("tmpfs", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("opening a tmpfs: %w", err)
	}
	defer unix.Close(fsfd)
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return fmt.Errorf("creating a tmpfs: %w", err)
	}
	mfd, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, unix.MOUNT_ATTR_NOSUID|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOEXEC)
	if err != nil {
		return fmt.Errorf("mounting a tmpfs: %w", err)
	}
	defer unix.Close(mfd)
	fd, err := unix.Openat(mfd, name, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("creating %s: %w", name, err)
	}
	_, err = unix.Write(fd, []byte(content))
	_ = unix.Close(fd)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	tfd, err := unix.OpenTree(mfd, name, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("cloning %s: %w", name, err)
	}
	defer unix.Close(tfd)
	if err := unix.MoveMount(tfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("mounting %s: %w", name, err)
	}
	return unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
}

// bindReadOnly binds each path read-only over itself, so that the command
// cannot change the policy that decides it.
func bindReadOnly(paths []string) error {
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return fmt.Errorf("binding %s read-only: %w", p, err)
		}
		if err := bindOver(real, real, true); err != nil {
			return fmt.Errorf("binding %s read-only: %w", p, err)
		}
	}
	return nil
}

// hide makes each existing path empty: an empty, inaccessible tmpfs over a
// directory, /dev/null over anything else (a socket then refuses
// connections).
func hide(paths []string) error {
	for _, p := range paths {
		real, err := filepath.EvalSymlinks(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("hiding %s: %w", p, err)
		}
		fi, err := os.Stat(real)
		if err != nil {
			return fmt.Errorf("hiding %s: %w", p, err)
		}
		if fi.IsDir() {
			err = unix.Mount("tmpfs", real, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC|unix.MS_RDONLY, "size=4k,mode=000")
		} else {
			err = bindOver("/dev/null", real, true)
		}
		if err != nil {
			return fmt.Errorf("hiding %s: %w", p, err)
		}
	}
	return nil
}

// bindOver bind-mounts src on target, then remounts it read-only when
// asked, keeping the flags the kernel locks in a user namespace (nosuid,
// nodev, noexec, atime) or the remount is refused.
func bindOver(src, target string, readOnly bool) error {
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if !readOnly {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
	for _, f := range []struct{ st, ms uintptr }{
		{unix.ST_NOSUID, unix.MS_NOSUID}, {unix.ST_NODEV, unix.MS_NODEV}, {unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME}, {unix.ST_NODIRATIME, unix.MS_NODIRATIME}, {unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f.st != 0 {
			flags |= f.ms
		}
	}
	return unix.Mount("", target, "", flags, "")
}
