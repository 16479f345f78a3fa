package netstack

import (
	"bytes"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// link is the command's side of a stack started on one end of a
// socketpair: it writes and reads raw IP packets, as a TUN device's
// other end would.
type link struct {
	t  *testing.T
	fd int
}

func startStack(t *testing.T, cfg Config) *link {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg.FD, cfg.MTU = fds[0], 65520
	if cfg.TCP == nil {
		cfg.TCP = func(f *Flow) { f.Refuse() }
	}
	st, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		st.Close()
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	tv := unix.NsecToTimeval(int64(5 * time.Second))
	if err := unix.SetsockoptTimeval(fds[1], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return &link{t: t, fd: fds[1]}
}

// sendUDP writes one UDP datagram src → dst.
func (l *link) sendUDP(src, dst netip.AddrPort, payload []byte) {
	l.t.Helper()
	l.write(udpPacket(src, dst, payload))
}

// write writes one packet.
func (l *link) write(pkt []byte) {
	l.t.Helper()
	_, err := unix.Write(l.fd, pkt)
	for err == unix.EINTR {
		_, err = unix.Write(l.fd, pkt)
	}
	if err != nil {
		l.t.Fatal(err)
	}
}

// recvUDP reads the next packet, which must be a UDP datagram with a
// valid checksum, and returns its addresses and payload.
func (l *link) recvUDP() (src, dst netip.AddrPort, payload []byte) {
	l.t.Helper()
	buf := make([]byte, 65536)
	n, err := unix.Read(l.fd, buf)
	for err == unix.EINTR { // the runtime's preemption signals
		n, err = unix.Read(l.fd, buf)
	}
	if err != nil {
		l.t.Fatalf("reading a packet: %v", err)
	}
	pkt := buf[:n]
	var srcA, dstA tcpip.Address
	var u header.UDP
	switch pkt[0] >> 4 {
	case 4:
		ip := header.IPv4(pkt)
		if ip.Protocol() != uint8(header.UDPProtocolNumber) {
			l.t.Fatalf("got protocol %d, want UDP", ip.Protocol())
		}
		srcA, dstA, u = ip.SourceAddress(), ip.DestinationAddress(), header.UDP(ip.Payload())
	default:
		ip := header.IPv6(pkt)
		if ip.NextHeader() != uint8(header.UDPProtocolNumber) {
			l.t.Fatalf("got next header %d, want UDP", ip.NextHeader())
		}
		srcA, dstA, u = ip.SourceAddress(), ip.DestinationAddress(), header.UDP(ip.Payload())
	}
	payload = u.Payload()
	if !u.IsChecksumValid(srcA, dstA, checksum.Checksum(payload, 0)) {
		l.t.Fatal("the answer's UDP checksum is not valid")
	}
	return addrPort(srcA, u.SourcePort()), addrPort(dstA, u.DestinationPort()), payload
}

// udpPacket is an IPv4 or IPv6 packet of one UDP datagram, checksummed.
func udpPacket(src, dst netip.AddrPort, payload []byte) []byte {
	ipLen := header.IPv4MinimumSize
	if src.Addr().Is6() {
		ipLen = header.IPv6MinimumSize
	}
	b := make([]byte, ipLen+header.UDPMinimumSize+len(payload))
	s, d := tcpip.AddrFromSlice(src.Addr().AsSlice()), tcpip.AddrFromSlice(dst.Addr().AsSlice())
	udpLen := uint16(header.UDPMinimumSize + len(payload))
	if src.Addr().Is6() {
		header.IPv6(b).Encode(&header.IPv6Fields{PayloadLength: udpLen, TransportProtocol: header.UDPProtocolNumber,
			HopLimit: 64, SrcAddr: s, DstAddr: d})
	} else {
		ip := header.IPv4(b)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber),
			SrcAddr: s, DstAddr: d})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	u := header.UDP(b[ipLen:])
	u.Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: udpLen})
	copy(u.Payload(), payload)
	sum := u.CalculateChecksum(checksum.Combine(header.PseudoHeaderChecksum(header.UDPProtocolNumber, s, d, udpLen),
		checksum.Checksum(payload, 0)))
	u.SetChecksum(^sum)
	return b
}

// TestDNSAnswersLeaveNothingBehind: 10,000 queries, each from its own
// source port (as resolvers send them), are each answered from the
// address and port they were sent to, and leave no goroutine behind.
func TestDNSAnswersLeaveNothingBehind(t *testing.T) {
	l := startStack(t, Config{DNS: func(q []byte) []byte { return append([]byte("answer to "), q...) }})
	before := runtime.NumGoroutine()
	for i := range 10000 {
		src := netip.AddrPortFrom(netip.MustParseAddr("169.254.77.1"), uint16(10000+i))
		dst := netip.AddrPortFrom(netip.MustParseAddr("169.254.77.53"), 53)
		if i%2 == 1 { // IPv6, where the checksum is not optional
			src = netip.AddrPortFrom(netip.MustParseAddr("fd00:7267:1::1"), src.Port())
			dst = netip.AddrPortFrom(netip.MustParseAddr("fd00:7267::35"), 53)
		}
		q := fmt.Appendf(nil, "query %d", i)
		l.sendUDP(src, dst, q)
		from, to, a := l.recvUDP()
		if from != dst || to != src || !bytes.Equal(a, append([]byte("answer to "), q...)) {
			t.Fatalf("query %d: got %q from %s to %s, want the answer from %s to %s", i, a, from, to, dst, src)
		}
	}
	if after := runtime.NumGoroutine(); after > before+4 {
		t.Errorf("%d goroutines after 10,000 lookups, %d before", after, before)
	}
}

// TestDNSDropsBadDatagrams: a datagram whose UDP length runs past the
// packet is not answered (the next, valid one is). Checksums are not
// verified: the link's packets come from the sandbox's kernel (New).
func TestDNSDropsBadDatagrams(t *testing.T) {
	l := startStack(t, Config{DNS: func(q []byte) []byte { return q }})
	src := netip.MustParseAddrPort("169.254.77.1:5353")
	dst := netip.MustParseAddrPort("169.254.77.53:53")
	bad := udpPacket(src, dst, []byte("bad"))
	u := header.UDP(bad[header.IPv4MinimumSize:])
	u.SetLength(u.Length() + 100)
	l.write(bad)
	l.sendUDP(src, dst, []byte("good"))
	if _, _, a := l.recvUDP(); string(a) != "good" {
		t.Fatalf("got %q, want the answer to the valid datagram", a)
	}
}
