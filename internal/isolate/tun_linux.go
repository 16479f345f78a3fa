package isolate

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The link of transparent isolation: a TUN device whose other end is
// regate's user-space stack. Its own address is link-local, outside the
// fake-IP ranges; a default route sends every other destination to it.
const (
	tunName = "regate0"
	TUNMTU  = 65520 // large: the user-space stack is 7× slower at 1500
)

// tunAddr is the device's own address; DNSAddr the resolver's inside.
var (
	tunAddr = [4]byte{169, 254, 77, 1}
	DNSAddr = [4]byte{169, 254, 77, 53}
)

// openTUN creates regate0 up, with its address and the default route, and
// returns its file.
func openTUN() (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	f := os.NewFile(uintptr(fd), tunName)
	ifr, err := unix.NewIfreq(tunName)
	if err == nil {
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = configureTUN()
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("creating %s: %w", tunName, err)
	}
	return f, nil
}

func configureTUN() error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	set := func(req uint, fill func(*unix.Ifreq)) error {
		ifr, err := unix.NewIfreq(tunName)
		if err != nil {
			return err
		}
		fill(ifr)
		return unix.IoctlIfreq(s, req, ifr)
	}
	steps := []struct {
		what string
		req  uint
		fill func(*unix.Ifreq)
	}{
		{"setting the MTU", unix.SIOCSIFMTU, func(r *unix.Ifreq) { r.SetUint32(TUNMTU) }},
		{"setting the address", unix.SIOCSIFADDR, func(r *unix.Ifreq) { _ = r.SetInet4Addr(tunAddr[:]) }},
		{"setting the netmask", unix.SIOCSIFNETMASK, func(r *unix.Ifreq) { _ = r.SetInet4Addr([]byte{255, 255, 255, 255}) }},
		{"bringing it up", unix.SIOCSIFFLAGS, func(r *unix.Ifreq) { r.SetUint16(unix.IFF_UP | unix.IFF_RUNNING) }},
	}
	for _, st := range steps {
		if err := set(st.req, st.fill); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	ifi, err := net.InterfaceByName(tunName)
	if err != nil {
		return err
	}
	return addDefaultRoute(ifi.Index)
}

// addDefaultRoute adds 0.0.0.0/0 dev ifindex over rtnetlink.
func addDefaultRoute(ifindex int) error {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("adding the default route: %w", err)
	}
	defer unix.Close(s)
	attrLen := unix.SizeofRtAttr + 4
	total := unix.NLMSG_HDRLEN + unix.SizeofRtMsg + attrLen
	b := make([]byte, total)
	*(*unix.NlMsghdr)(unsafe.Pointer(&b[0])) = unix.NlMsghdr{
		Len: uint32(total), Type: unix.RTM_NEWROUTE, Seq: 1,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_EXCL | unix.NLM_F_ACK,
	}
	*(*unix.RtMsg)(unsafe.Pointer(&b[unix.NLMSG_HDRLEN])) = unix.RtMsg{
		Family: unix.AF_INET, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT,
		Scope: unix.RT_SCOPE_LINK, Type: unix.RTN_UNICAST,
	}
	off := unix.NLMSG_HDRLEN + unix.SizeofRtMsg
	*(*unix.RtAttr)(unsafe.Pointer(&b[off])) = unix.RtAttr{Len: uint16(attrLen), Type: unix.RTA_OIF}
	binary.NativeEndian.PutUint32(b[off+unix.SizeofRtAttr:], uint32(ifindex))
	if err := unix.Sendto(s, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("adding the default route: %w", err)
	}
	ack := make([]byte, 4096)
	n, _, err := unix.Recvfrom(s, ack, 0)
	if err != nil {
		return fmt.Errorf("adding the default route: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(ack[:n])
	if err != nil {
		return fmt.Errorf("adding the default route: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
				return fmt.Errorf("adding the default route: %w", unix.Errno(-code))
			}
		}
	}
	return nil
}
