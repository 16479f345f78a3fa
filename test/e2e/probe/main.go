//go:build linux

// Command probe tries one way out of a sandbox and says how it went, for
// the end-to-end tests of `regate run --isolate`: "ok" and exit 0 when the
// attempt succeeded, the error and exit 1 when it failed.
//
//	probe tcp ADDR | udp ADDR | unix PATH | abstract NAME | vsock | write PATH |
//	      read PATH | mount DIR | umount DIR | lo-down | unshare-net | ptrace |
//	      io_uring | status
package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: probe WHAT [ARG]")
		os.Exit(2)
	}
	arg := ""
	if len(os.Args) > 2 {
		arg = os.Args[2]
	}
	out, err := probe(os.Args[1], arg)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Print(out)
	fmt.Println("ok")
}

func probe(what, arg string) (string, error) {
	switch what {
	case "tcp", "udp", "unix":
		c, err := net.DialTimeout(what, arg, 2*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		if _, err = c.Write([]byte("x\n")); err != nil || what != "udp" {
			return "", err
		}
		// A refusal (ICMP port unreachable) comes back on the next read.
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, err = c.Read(make([]byte, 64))
		return "", err
	case "echo":
		c, err := net.DialTimeout("tcp", arg, 2*time.Second)
		if err != nil {
			return "", err
		}
		defer c.Close()
		if _, err := c.Write([]byte("ping\n")); err != nil {
			return "", err
		}
		_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
		b := make([]byte, 5)
		_, err = io.ReadFull(c, b)
		return string(b), err
	case "abstract":
		c, err := net.Dial("unix", "@"+arg)
		if err != nil {
			return "", err
		}
		return "", c.Close()
	case "vsock":
		fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
		if err != nil {
			return "", err
		}
		return "", unix.Close(fd)
	case "write":
		f, err := os.OpenFile(arg, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return "", err
		}
		_, err = f.WriteString("# written from inside\n")
		return "", errors.Join(err, f.Close())
	case "read":
		b, err := os.ReadFile(arg)
		return strings.ReplaceAll(string(b), "\x00", "\n"), err
	case "mount":
		return "", unix.Mount("tmpfs", arg, "tmpfs", 0, "")
	case "umount":
		return "", unix.Unmount(arg, unix.MNT_DETACH)
	case "lo-down":
		return "", loDown()
	case "ptrace":
		_, _, errno := unix.RawSyscall(unix.SYS_PTRACE, unix.PTRACE_TRACEME, 0, 0)
		return "", errnoErr(errno)
	case "io_uring":
		var params [120]byte
		_, _, errno := unix.RawSyscall(unix.SYS_IO_URING_SETUP, 4, uintptr(unsafe.Pointer(&params[0])), 0)
		return "", errnoErr(errno)
	case "unshare-net":
		return "", unix.Unshare(unix.CLONE_NEWNET)
	case "status":
		b, err := os.ReadFile("/proc/self/status")
		var keep []string
		for _, line := range strings.Split(string(b), "\n") {
			for _, k := range []string{"Uid:", "Gid:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"} {
				if strings.HasPrefix(line, k) {
					keep = append(keep, line)
				}
			}
		}
		return strings.Join(keep, "\n") + "\n", err
	}
	return "", fmt.Errorf("unknown probe %q", what)
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func loDown() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() &^ unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
