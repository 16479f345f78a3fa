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
// regate's user-space stack (or a veth pair, veth_linux.go). Its own
// addresses are outside the fake-IP ranges; default routes send every
// other destination to it.
const (
	tunName = "regate0"
	LinkMTU = 65520 // large: the user-space stack is 7× slower at 1500
)

// tunAddr and tunAddr6 are the device's own addresses (outside the
// fake-IP ranges 198.18.0.0/15 and fd00:7267::/64); DNSAddr is the
// resolver's inside.
var (
	tunAddr  = [4]byte{169, 254, 77, 1}
	tunAddr6 = [16]byte{0xfd, 0x00, 0x72, 0x67, 0, 1, 14: 0, 15: 1} // fd00:7267:1::1
	DNSAddr  = [4]byte{169, 254, 77, 53}
)

// openTUN creates regate0 up, with its addresses and the default routes,
// and returns its file.
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
	if err := configureInner(true); err != nil {
		return err
	}
	ifi, err := net.InterfaceByName(tunName)
	if err != nil {
		return err
	}
	return addRoutes(ifi.Index, nil, nil)
}

// configureInner sets regate0's MTU (withMTU; a veth has it from its
// creation), IPv4 address, and brings it up.
func configureInner(withMTU bool) error {
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
		{"setting the MTU", unix.SIOCSIFMTU, func(r *unix.Ifreq) { r.SetUint32(LinkMTU) }},
		{"setting the address", unix.SIOCSIFADDR, func(r *unix.Ifreq) { _ = r.SetInet4Addr(tunAddr[:]) }},
		{"setting the netmask", unix.SIOCSIFNETMASK, func(r *unix.Ifreq) { _ = r.SetInet4Addr([]byte{255, 255, 255, 255}) }},
		{"bringing it up", unix.SIOCSIFFLAGS, func(r *unix.Ifreq) { r.SetUint16(unix.IFF_UP | unix.IFF_RUNNING) }},
	}
	if !withMTU {
		steps = steps[1:]
	}
	for _, st := range steps {
		if err := set(st.req, st.fill); err != nil {
			return fmt.Errorf("%s: %w", st.what, err)
		}
	}
	return nil
}

// addRoutes gives regate0 its IPv6 address and a default route for each
// family, over rtnetlink: through the device itself (a TUN has no
// neighbours) when gw4 and gw6 are nil, else through those gateways,
// on-link (the veth: their neighbour entries are permanent).
func addRoutes(ifindex int, gw4, gw6 []byte) error {
	addr := unix.IfAddrmsg{Family: unix.AF_INET6, Prefixlen: 128, Flags: unix.IFA_F_NODAD, Scope: unix.RT_SCOPE_UNIVERSE, Index: uint32(ifindex)}
	if err := rtnetlink(unix.RTM_NEWADDR, unsafe.Slice((*byte)(unsafe.Pointer(&addr)), unix.SizeofIfAddrmsg),
		rtattr(unix.IFA_LOCAL, tunAddr6[:]), rtattr(unix.IFA_ADDRESS, tunAddr6[:])); err != nil {
		return fmt.Errorf("setting the IPv6 address: %w", err)
	}
	oif := binary.NativeEndian.AppendUint32(nil, uint32(ifindex))
	for _, r := range []struct {
		family uint8
		gw     []byte
	}{{unix.AF_INET, gw4}, {unix.AF_INET6, gw6}} {
		rt := unix.RtMsg{Family: r.family, Table: unix.RT_TABLE_MAIN, Protocol: unix.RTPROT_BOOT,
			Scope: unix.RT_SCOPE_LINK, Type: unix.RTN_UNICAST}
		attrs := [][]byte{rtattr(unix.RTA_OIF, oif)}
		if r.family == unix.AF_INET6 || r.gw != nil {
			rt.Scope = unix.RT_SCOPE_UNIVERSE // IPv6 routes and routes through a gateway
		}
		if r.gw != nil {
			rt.Flags = unix.RTNH_F_ONLINK
			attrs = append(attrs, rtattr(unix.RTA_GATEWAY, r.gw))
		}
		if err := rtnetlink(unix.RTM_NEWROUTE, unsafe.Slice((*byte)(unsafe.Pointer(&rt)), unix.SizeofRtMsg), attrs...); err != nil {
			return fmt.Errorf("adding the default route (family %d): %w", r.family, err)
		}
	}
	return nil
}

// rtattr is one route attribute, padded.
func rtattr(typ uint16, data []byte) []byte {
	n := unix.SizeofRtAttr + len(data)
	b := make([]byte, (n+unix.RTA_ALIGNTO-1) & ^(unix.RTA_ALIGNTO-1))
	*(*unix.RtAttr)(unsafe.Pointer(&b[0])) = unix.RtAttr{Len: uint16(n), Type: typ}
	copy(b[unix.SizeofRtAttr:], data)
	return b
}

// rtnetlink sends one creating request (header, then attributes) and
// waits for its acknowledgement.
func rtnetlink(typ uint16, header []byte, attrs ...[]byte) error {
	s, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	b := make([]byte, unix.NLMSG_HDRLEN, 256)
	b = append(b, header...)
	for _, a := range attrs {
		b = append(b, a...)
	}
	*(*unix.NlMsghdr)(unsafe.Pointer(&b[0])) = unix.NlMsghdr{
		Len: uint32(len(b)), Type: typ, Seq: 1,
		Flags: unix.NLM_F_REQUEST | unix.NLM_F_CREATE | unix.NLM_F_EXCL | unix.NLM_F_ACK,
	}
	if err := unix.Sendto(s, b, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	ack := make([]byte, 4096)
	n, _, err := unix.Recvfrom(s, ack, 0)
	if err != nil {
		return err
	}
	msgs, err := syscall.ParseNetlinkMessage(ack[:n])
	if err != nil {
		return err
	}
	for _, m := range msgs {
		if m.Header.Type == unix.NLMSG_ERROR && len(m.Data) >= 4 {
			if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
				return unix.Errno(-code)
			}
		}
	}
	return nil
}
