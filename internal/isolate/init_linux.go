package isolate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// controlFD is where the init finds its end of the control socket.
const controlFD = 3

// Init is the namespace's init, run as `regate __isolate-init`: PID 1 of
// the new PID namespace, with every capability of the new user namespace.
// It sets the namespace up, passes the listeners out, starts the command
// through ExecArg, forwards signals to it, reaps every orphan, and returns
// the command's exit status (128+N when signal N killed it). A failure
// before the command starts is reported to regate and returns 125.
func Init(stderr io.Writer) int {
	ctl, err := controlConn()
	if err != nil {
		fmt.Fprintf(stderr, "regate: isolate init: %v\n", err)
		return 125
	}
	defer ctl.Close()
	var setup setupMsg
	if err := readMsg(ctl, &setup); err != nil {
		fmt.Fprintf(stderr, "regate: isolate init: %v\n", err)
		return 125
	}
	files, ready, err := buildNamespace(setup)
	if err != nil {
		_ = sendMsg(ctl, readyMsg{Error: err.Error()}, nil)
		return 125
	}
	if err := sendMsg(ctl, ready, files); err != nil {
		fmt.Fprintf(stderr, "regate: isolate init: %v\n", err)
		return 125
	}
	for _, f := range files {
		_ = f.Close() // regate holds them now; the command must not
	}
	var run execMsg
	if err := readMsg(ctl, &run); err != nil {
		return 125 // regate gave up before the command started
	}
	return superviseCommand(run, setup, stderr)
}

// buildNamespace makes the mounts private, brings lo up, opens the
// listeners (and the link when asked: ready.LinkError says why none could
// be made), mounts a fresh /proc and /sys, points resolv.conf at regate's
// resolver on the link (or at nothing), binds what regate reads read-only
// and hides what must not be reached.
func buildNamespace(s setupMsg) (files []*os.File, ready readyMsg, err error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, ready, fmt.Errorf("making mounts private: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return nil, ready, err
	}
	if files, ready.Addrs, err = openListeners(s.Listeners); err != nil {
		return nil, ready, err
	}
	resolver := "127.0.0.1"
	if s.TUN {
		if link, kind, err := openLink(); err != nil {
			ready.LinkError = err.Error()
		} else {
			files = append(files, link)
			ready.Link = kind
			resolver = net.IP(DNSAddr[:]).String()
		}
	}
	steps := []func() error{
		mountProcAndSys,
		noNestedUserNS,
		func() error { return bindResolvConf(resolver) },
		func() error { return bindReadOnly(s.ReadOnly) },
		func() error { return hide(s.Hide) },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, ready, err
		}
	}
	return files, ready, nil
}

// openLink makes regate0: a TUN device, or where /dev/net/tun cannot be
// used, a veth pair.
func openLink() (*os.File, string, error) {
	tun, tunErr := openTUN()
	if tunErr == nil {
		return tun, linkTUN, nil
	}
	veth, err := openVeth()
	if err != nil {
		return nil, "", fmt.Errorf("%w; %w", tunErr, err)
	}
	return veth, linkVeth, nil
}

// loopbackUp brings lo up: the only interface of the new network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}

// openListeners opens n listeners on 127.0.0.1 inside the namespace.
func openListeners(n int) ([]*os.File, []string, error) {
	var files []*os.File
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("opening a listener inside: %w", err)
		}
		f, err := l.(*net.TCPListener).File()
		_ = l.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("passing a listener: %w", err)
		}
		files = append(files, f)
		addrs = append(addrs, l.Addr().String())
	}
	return files, addrs, nil
}

// superviseCommand starts the command through the last stage, forwards
// signals to it and reaps until it exits.
func superviseCommand(run execMsg, setup setupMsg, stderr io.Writer) int {
	stage, err := json.Marshal(stageMsg{execMsg: run, UID: setup.UID, GID: setup.GID, SetGroups: setup.SetGroups})
	if err != nil {
		fmt.Fprintf(stderr, "regate: isolate init: %v\n", err)
		return 125
	}
	cmd := exec.Command("/proc/self/exe", ExecArg, string(stage))
	cmd.Env = run.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH)
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(stderr, "regate: isolate init: starting the command: %v\n", err)
		return 125
	}
	pid := cmd.Process.Pid
	ttyDelivers := foregroundTerminal(os.Stdin)
	go func() {
		for sig := range sigc {
			if sig == syscall.SIGINT && ttyDelivers {
				continue // the terminal delivered it to the command too
			}
			_ = unix.Kill(pid, sig.(syscall.Signal))
		}
	}()
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(-1, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 125
		}
		if wpid != pid {
			continue // an orphan: reaped
		}
		if ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ws.ExitStatus()
	}
}

// foregroundTerminal reports whether f is a terminal whose foreground
// process group is ours (and so the command's).
func foregroundTerminal(f *os.File) bool {
	pgrp, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

func controlConn() (*net.UnixConn, error) {
	f := os.NewFile(controlFD, "control")
	c, err := net.FileConn(f)
	_ = f.Close()
	if err != nil {
		return nil, fmt.Errorf("opening the control socket: %w", err)
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		_ = c.Close()
		return nil, fmt.Errorf("control socket is a %T", c)
	}
	return uc, nil
}

// noNestedUserNS sets user.max_user_namespaces to 0 inside the sandbox's
// user namespace: the command cannot create nested ones (with a full
// bounding set in them, more of the kernel would be open to it).
// The sysctl belongs to the host's root: a caller that is not root cannot
// set it, and its command may still create nested user namespaces (which
// reach no more network than the sandbox's).
func noNestedUserNS() error {
	err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0\n"), 0)
	if err != nil && !errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("forbidding nested user namespaces: %w", err)
	}
	return nil
}
