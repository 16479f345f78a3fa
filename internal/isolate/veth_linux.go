package isolate

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The veth fallback of the link, for callers that cannot open
// /dev/net/tun (mode 0600 on many machines): regate0 is one end of a veth
// pair; the other end, vethOuterName, lives in a second network namespace
// that the sandbox's user namespace owns and where nothing else lives,
// and regate reads it through an AF_PACKET socket created there and
// passed out. Frames carry ethernet headers between fixed, locally
// administered MACs; the command's kernel reaches the outer end through
// gateways whose neighbour entries are permanent, so nothing is ever
// resolved on the link.
const vethOuterName = "regate0-outer"

var (
	vethInnerMAC = net.HardwareAddr{0x02, 0x72, 0x67, 0, 0, 1}
	vethOuterMAC = net.HardwareAddr{0x02, 0x72, 0x67, 0, 0, 2}
	vethGW4      = [4]byte{169, 254, 77, 2}
	vethGW6      = [16]byte{0xfd, 0x00, 0x72, 0x67, 0, 1, 14: 0, 15: 2} // fd00:7267:1::2
)

// vethEthernet is what regate's stack needs to speak on the outer end.
func vethEthernet() *Ethernet {
	return &Ethernet{
		Own: vethOuterMAC, Peer: vethInnerMAC,
		PeerAddrs: []netip.Addr{netip.AddrFrom4(tunAddr), netip.AddrFrom16(tunAddr6)},
	}
}

// openVeth creates the pair (regate0 up inside, with its addresses, its
// routes and its gateways' neighbours; transmit checksum offload off, so
// that every frame reaches the socket with its checksums) and returns the
// AF_PACKET socket on the outer end.
func openVeth() (*os.File, error) {
	inner, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening the network namespace: %w", err)
	}
	defer unix.Close(inner)
	type result struct {
		f   *os.File
		err error
	}
	done := make(chan result, 1)
	go func() {
		// The thread moves to the outer namespace and is never unlocked:
		// it ends with this goroutine, and no other code runs on it.
		runtime.LockOSThread()
		f, err := outerEnd(inner)
		done <- result{f, err}
	}()
	r := <-done
	if r.err != nil {
		return nil, fmt.Errorf("creating the veth pair: %w", r.err)
	}
	if err := configureVethInner(); err != nil {
		_ = r.f.Close()
		return nil, fmt.Errorf("configuring %s: %w", tunName, err)
	}
	return r.f, nil
}

// outerEnd runs on a locked thread: it moves the thread to a new network
// namespace, creates the pair there with its other end in the namespace
// whose fd is inner, brings the outer end up and opens the socket on it.
func outerEnd(inner int) (*os.File, error) {
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("creating the outer network namespace: %w", err)
	}
	mtu := binary.NativeEndian.AppendUint32(nil, LinkMTU)
	peer := make([]byte, unix.SizeofIfInfomsg) // the peer's ifinfomsg, zero, then its attributes
	peer = append(peer, rtattr(unix.IFLA_IFNAME, append([]byte(tunName), 0))...)
	peer = append(peer, rtattr(unix.IFLA_ADDRESS, vethInnerMAC)...)
	peer = append(peer, rtattr(unix.IFLA_MTU, mtu)...)
	peer = append(peer, rtattr(unix.IFLA_NET_NS_FD, binary.NativeEndian.AppendUint32(nil, uint32(inner)))...)
	const vethInfoPeer = 1 // VETH_INFO_PEER
	linkInfo := append(rtattr(unix.IFLA_INFO_KIND, []byte("veth\x00")),
		rtattr(unix.IFLA_INFO_DATA, rtattr(vethInfoPeer, peer))...)
	msg := unix.IfInfomsg{Family: unix.AF_UNSPEC}
	if err := rtnetlink(unix.RTM_NEWLINK, unsafe.Slice((*byte)(unsafe.Pointer(&msg)), unix.SizeofIfInfomsg),
		rtattr(unix.IFLA_IFNAME, append([]byte(vethOuterName), 0)),
		rtattr(unix.IFLA_ADDRESS, vethOuterMAC),
		rtattr(unix.IFLA_MTU, mtu),
		rtattr(unix.IFLA_LINKINFO, linkInfo)); err != nil {
		return nil, err
	}
	index, err := linkUp(vethOuterName)
	if err != nil {
		return nil, err
	}
	return packetSocket(index)
}

// linkUp brings the named link of this thread's namespace up and returns
// its index.
func linkUp(name string) (int, error) {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("bringing %s up: %w", name, err)
	}
	defer unix.Close(s)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(s, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("finding %s: %w", name, err)
	}
	index := int(ifr.Uint32())
	ifr, _ = unix.NewIfreq(name)
	ifr.SetUint16(unix.IFF_UP | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(s, unix.SIOCSIFFLAGS, ifr); err != nil {
		return 0, fmt.Errorf("bringing %s up: %w", name, err)
	}
	return index, nil
}

// packetSocket opens an AF_PACKET socket bound to the link index, which
// does not see the frames it sends itself.
func packetSocket(index int) (*os.File, error) {
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
	if err != nil {
		return nil, fmt.Errorf("opening the packet socket: %w", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("ignoring outgoing frames: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding the packet socket: %w", err)
	}
	return os.NewFile(uintptr(fd), vethOuterName), nil
}

// configureVethInner turns transmit checksum offload off on regate0 (a
// frame would reach the socket with a partial checksum, which the stack
// drops), gives it its addresses, brings it up, and adds the routes and
// the gateways' permanent neighbour entries.
func configureVethInner() error {
	if err := txChecksumOff(tunName); err != nil {
		return err
	}
	if err := configureInner(false); err != nil {
		return err
	}
	ifi, err := net.InterfaceByName(tunName)
	if err != nil {
		return err
	}
	for _, gw := range [][]byte{vethGW4[:], vethGW6[:]} {
		family := uint8(unix.AF_INET)
		if len(gw) == 16 {
			family = unix.AF_INET6
		}
		nd := unix.NdMsg{Family: family, Ifindex: int32(ifi.Index), State: unix.NUD_PERMANENT}
		if err := rtnetlink(unix.RTM_NEWNEIGH, unsafe.Slice((*byte)(unsafe.Pointer(&nd)), unix.SizeofNdMsg),
			rtattr(unix.NDA_DST, gw), rtattr(unix.NDA_LLADDR, vethOuterMAC)); err != nil {
			return fmt.Errorf("adding the gateway's neighbour entry: %w", err)
		}
	}
	return addRoutes(ifi.Index, vethGW4[:], vethGW6[:])
}

// txChecksumOff is `ethtool -K name tx off` (ETHTOOL_STXCSUM).
func txChecksumOff(name string) error {
	s, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("turning checksum offload off: %w", err)
	}
	defer unix.Close(s)
	value := struct{ cmd, data uint32 }{cmd: unix.ETHTOOL_STXCSUM}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte // the rest of struct ifreq's union
	}
	copy(ifr.name[:], name)
	ifr.data = unsafe.Pointer(&value)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(s), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(&value)
	if errno != 0 {
		return fmt.Errorf("turning checksum offload off: %w", errno)
	}
	return nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
