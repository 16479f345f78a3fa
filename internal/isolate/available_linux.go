package isolate

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// Available reports whether this kernel lets regate create the namespaces
// of --isolate, naming the setting to change when it does not.
func Available() error {
	if v, ok := sysctl("user/max_user_namespaces"); ok && v == "0" {
		return errors.New("--isolate needs user namespaces: user.max_user_namespaces is 0 (sysctl -w user.max_user_namespaces=15000)")
	}
	if os.Getuid() == 0 {
		return nil
	}
	if v, ok := sysctl("kernel/unprivileged_userns_clone"); ok && v == "0" {
		return errors.New("--isolate needs unprivileged user namespaces: kernel.unprivileged_userns_clone is 0 (sysctl -w kernel.unprivileged_userns_clone=1)")
	}
	if v, ok := sysctl("kernel/apparmor_restrict_unprivileged_userns"); ok && v == "1" {
		return errors.New("--isolate needs unprivileged user namespaces: AppArmor restricts them, kernel.apparmor_restrict_unprivileged_userns is 1 (sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or an AppArmor profile for regate that allows userns)")
	}
	return nil
}

// userNSHint says which setting may be why creating the namespaces failed.
func userNSHint(err error) string {
	if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EUSERS) && !errors.Is(err, syscall.EINVAL) {
		return ""
	}
	return fmt.Sprintf(" (the kernel refused new namespaces: check user.max_user_namespaces, kernel.unprivileged_userns_clone, kernel.apparmor_restrict_unprivileged_userns, or a container's seccomp profile; uid %d)", os.Getuid())
}

func sysctl(name string) (string, bool) {
	b, err := os.ReadFile("/proc/sys/" + name)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}
