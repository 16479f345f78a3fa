package isolate

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Sandbox is a running namespace init, its listeners passed out, waiting
// for its command.
type Sandbox struct {
	cmd       *exec.Cmd
	ctl       *net.UnixConn
	listeners []net.Listener
	link      *Link
	linkErr   string
	done      chan struct{}
	state     *os.ProcessState
	waitErr   error
}

// Stdio are the command's standard streams.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Start starts the init in new user, network, mount and PID namespaces
// and waits until it has built the namespace and passed the listeners
// out. It never falls back to anything less: without namespaces it fails,
// naming the kernel setting to change.
func Start(spec Spec, stdio Stdio) (*Sandbox, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	uid, gid := os.Getuid(), os.Getgid()
	target := User{UID: uid, GID: gid}
	if spec.User != nil {
		if uid != 0 {
			return nil, fmt.Errorf("--isolate-user needs regate to run as root")
		}
		target = *spec.User
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("isolating: creating the control socket: %w", err)
	}
	parent, child := os.NewFile(uintptr(fds[0]), "control"), os.NewFile(uintptr(fds[1]), "control")
	defer child.Close()
	ctl, err := net.FileConn(parent)
	_ = parent.Close()
	if err != nil {
		return nil, fmt.Errorf("isolating: %w", err)
	}
	cmd := exec.Command(spec.Self, InitArg)
	cmd.Env = []string{} // nothing of regate's environment reaches the init
	cmd.Stdin, cmd.Stdout, cmd.Stderr = stdio.In, stdio.Out, stdio.Err
	cmd.ExtraFiles = []*os.File{child} // fd 3: controlFD
	cmd.SysProcAttr = initAttr(uid, gid, target)
	s := &Sandbox{cmd: cmd, ctl: ctl.(*net.UnixConn), done: make(chan struct{})}
	if err := s.startInit(); err != nil {
		_ = ctl.Close()
		return nil, fmt.Errorf("isolating: starting the namespace init: %w%s", err, userNSHint(err))
	}
	if err := s.handshake(spec, target); err != nil {
		s.Close()
		return nil, fmt.Errorf("isolating: %w", err)
	}
	return s, nil
}

// initAttr asks for the namespaces; the caller's ids map to themselves
// (and target's too when root asks for another user). An init that is not
// root inside keeps the capabilities its setup needs as ambient ones. It
// dies with regate (Pdeathsig), and the PID namespace with it.
func initAttr(uid, gid int, target User) *syscall.SysProcAttr {
	uids := []syscall.SysProcIDMap{{ContainerID: uid, HostID: uid, Size: 1}}
	gids := []syscall.SysProcIDMap{{ContainerID: gid, HostID: gid, Size: 1}}
	if target.UID != uid {
		uids = append(uids, syscall.SysProcIDMap{ContainerID: target.UID, HostID: target.UID, Size: 1})
	}
	if target.GID != gid {
		gids = append(gids, syscall.SysProcIDMap{ContainerID: target.GID, HostID: target.GID, Size: 1})
	}
	attr := &syscall.SysProcAttr{
		Cloneflags:                 unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_NEWPID,
		UidMappings:                uids,
		GidMappings:                gids,
		GidMappingsEnableSetgroups: uid == 0,
		Pdeathsig:                  syscall.SIGKILL,
	}
	if uid != 0 {
		attr.AmbientCaps = []uintptr{unix.CAP_SYS_ADMIN, unix.CAP_NET_ADMIN, unix.CAP_NET_RAW, unix.CAP_SETUID, unix.CAP_SETGID, unix.CAP_SETPCAP}
	}
	return attr
}

// startInit starts the init from a goroutine locked to its thread, which
// stays until the init has exited: Pdeathsig follows the thread that
// forked, not the process.
func (s *Sandbox) startInit() error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			close(s.done)
			return
		}
		started <- nil
		s.waitErr = s.cmd.Wait()
		s.state = s.cmd.ProcessState
		close(s.done)
	}()
	return <-started
}

// handshake sends the setup and receives the listeners.
func (s *Sandbox) handshake(spec Spec, target User) error {
	msg := setupMsg{Listeners: spec.Listeners, ReadOnly: spec.ReadOnly, Hide: spec.Hide, UID: target.UID, GID: target.GID, TUN: spec.Transparent, SetGroups: os.Getuid() == 0}
	if err := sendMsg(s.ctl, msg, nil); err != nil {
		return err
	}
	var ready readyMsg
	files, err := readMsgFiles(s.ctl, &ready)
	if err != nil {
		return fmt.Errorf("setting the namespace up: %w", err)
	}
	if ready.Error != "" {
		closeAll(files)
		return fmt.Errorf("setting the namespace up: %s", ready.Error)
	}
	want := spec.Listeners
	if spec.Transparent && ready.Link != "" {
		want++
	}
	if len(files) != want {
		closeAll(files)
		return fmt.Errorf("setting the namespace up: %d descriptors passed, want %d", len(files), want)
	}
	if want > spec.Listeners {
		s.link = &Link{File: files[want-1], MTU: LinkMTU}
		files = files[:want-1]
		switch ready.Link {
		case linkTUN:
		case linkVeth:
			s.link.Ethernet = vethEthernet()
		default:
			closeAll(files)
			_ = s.link.File.Close()
			return fmt.Errorf("setting the namespace up: a link of kind %q", ready.Link)
		}
	}
	s.linkErr = ready.LinkError
	defer closeAll(files)
	for _, f := range files {
		l, err := net.FileListener(f)
		if err != nil {
			return fmt.Errorf("serving a passed listener: %w", err)
		}
		s.listeners = append(s.listeners, l)
	}
	return nil
}

// Link is the link of transparent isolation, nil when there is none;
// LinkError then says why (when it was asked for).
func (s *Sandbox) Link() *Link { return s.link }

// LinkError says why no link could be made.
func (s *Sandbox) LinkError() string { return s.linkErr }

// Listeners are the listeners inside the namespace, in Spec order; the
// command reaches them at their address (127.0.0.1:PORT inside).
func (s *Sandbox) Listeners() []net.Listener { return s.listeners }

// Run starts the command inside: path and argv, with env.
func (s *Sandbox) Run(path string, argv, env []string) error {
	if err := sendMsg(s.ctl, execMsg{Path: path, Argv: argv, Env: env}, nil); err != nil {
		return fmt.Errorf("starting the isolated command: %w", err)
	}
	return nil
}

// Process is the init: signals sent to it reach the command.
func (s *Sandbox) Process() *os.Process { return s.cmd.Process }

// Wait waits for the init, which exits with the command's status.
func (s *Sandbox) Wait() (*os.ProcessState, error) {
	<-s.done
	return s.state, s.waitErr
}

// Close kills the init (and so everything in its PID namespace) unless it
// has exited, and waits for it.
func (s *Sandbox) Close() {
	select {
	case <-s.done:
	default:
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	_ = s.ctl.Close()
}
