// Package netstack is the user-space TCP/IP stack (gVisor's netstack) that
// reads the isolated command's TUN device: each TCP flow it sees is handed
// out before its handshake completes, DNS queries are answered, other UDP
// is refused with ICMP port unreachable. It is the only importer of gVisor.
package netstack

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"
)

const nicID = 1

// Config is what the stack hands its traffic to.
type Config struct {
	FD  int    // the TUN device (IFF_TUN|IFF_NO_PI), or see Ethernet
	MTU uint32 // the device's MTU
	// Ethernet is set when FD is an AF_PACKET socket on the outer end of
	// a veth pair: frames carry ethernet headers.
	Ethernet *Ethernet
	// TCP receives each new TCP flow, before its handshake is answered,
	// on a goroutine of the flow's own, which it may keep.
	TCP func(*Flow)
	// DNS answers a DNS query (port 53 on any address, UDP and TCP); nil
	// leaves them to UDP and TCP. A datagram's query is answered on the
	// goroutine that reads the link: DNS must not block.
	DNS func(query []byte) []byte
	// UDP is told of each other UDP datagram, refused with ICMP port
	// unreachable.
	UDP func(src, dst netip.AddrPort)
}

// Ethernet is the link layer of a veth pair: the stack's own MAC, the
// command's end's MAC, and the command's addresses there (its neighbours
// are static: the stack never resolves one).
type Ethernet struct {
	Own, Peer net.HardwareAddr
	PeerAddrs []netip.Addr
}

// Stack is a running netstack on a TUN device.
type Stack struct {
	s   *stack.Stack
	tun *tunLink // nil on a veth
}

// New starts the stack on cfg.FD.
func New(cfg Config) (*Stack, error) {
	link, tun, protocols, err := openLink(cfg)
	if err != nil {
		return nil, fmt.Errorf("opening the link: %w", err)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   protocols,
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		HandleLocal:        false,
	})
	st := &Stack{s: s, tun: tun}
	if err := tune(s); err != nil {
		st.close(false)
		return nil, err
	}
	// The handlers are set before the NIC exists: once it does, packets
	// are delivered concurrently.
	tcpFwd := tcp.NewForwarder(s, 0, 1024, func(r *tcp.ForwarderRequest) {
		f := &Flow{req: r, s: s}
		if r.ID().LocalPort == 53 && cfg.DNS != nil {
			if c, err := f.Accept(); err == nil {
				serveDNSTCP(c, cfg.DNS)
			}
			return
		}
		cfg.TCP(f)
	})
	s.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	s.SetTransportProtocolHandler(udp.ProtocolNumber, func(id stack.TransportEndpointID, pkt *stack.PacketBuffer) bool {
		if id.LocalPort == 53 && cfg.DNS != nil {
			answerDNSUDP(s, id, pkt, cfg.DNS)
			return true
		}
		if cfg.UDP != nil {
			cfg.UDP(addrPort(id.RemoteAddress, id.RemotePort), addrPort(id.LocalAddress, id.LocalPort))
		}
		return false // unhandled: the stack answers ICMP port unreachable
	})
	if terr := s.CreateNIC(nicID, link); terr != nil {
		st.close(false)
		return nil, fmt.Errorf("creating the NIC: %v", terr)
	}
	// Every destination is ours: accept packets to any address, and send
	// from any (the address the command connected to).
	if terr := s.SetPromiscuousMode(nicID, true); terr != nil {
		st.close(false)
		return nil, fmt.Errorf("setting promiscuous mode: %v", terr)
	}
	if terr := s.SetSpoofing(nicID, true); terr != nil {
		st.close(false)
		return nil, fmt.Errorf("setting spoofing: %v", terr)
	}
	s.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	if e := cfg.Ethernet; e != nil {
		for _, a := range e.PeerAddrs {
			proto := ipv4.ProtocolNumber
			if a.Is6() {
				proto = ipv6.ProtocolNumber
			}
			if terr := s.AddStaticNeighbor(nicID, proto, tcpip.AddrFromSlice(a.AsSlice()), tcpip.LinkAddress(e.Peer)); terr != nil {
				st.close(false)
				return nil, fmt.Errorf("adding the neighbour %s: %v", a, terr)
			}
		}
	}
	if tun != nil {
		tun.start()
	}
	return st, nil
}

// openLink opens cfg.FD as a TUN link (tunLink), or the veth's AF_PACKET
// socket with fdbased; tun is nil on the veth.
func openLink(cfg Config) (link stack.LinkEndpoint, tun *tunLink, protocols []stack.NetworkProtocolFactory, err error) {
	// Every packet read was made by the sandbox's kernel for this link and
	// never crossed a wire, checksummed in full (a TUN without a vnet
	// header, or a veth end with transmit offload off): verifying it again
	// costs CPU and guards against nothing.
	const caps = stack.CapabilityRXChecksumOffload
	protocols = []stack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol}
	e := cfg.Ethernet
	if e == nil {
		tun, err = newTUNLink(cfg.FD, cfg.MTU, caps)
		return tun, tun, protocols, err
	}
	// Frames are read from the socket's ring.
	link, err = fdbased.New(&fdbased.Options{FDs: []int{cfg.FD}, MTU: cfg.MTU, RXChecksumOffload: true,
		EthernetHeader: true, Address: tcpip.LinkAddress(e.Own), PacketDispatchMode: fdbased.PacketMMap})
	protocols = append(protocols, arp.NewProtocol) // where IPv4's static neighbours live
	return link, nil, protocols, err
}

// tune sets what tailscale settled on: SACK on, RACK off, reno, large
// buffers.
func tune(s *stack.Stack) error {
	sack := tcpip.TCPSACKEnabled(true)
	rack := tcpip.TCPRecovery(0)
	reno := tcpip.CongestionControlOption("reno")
	for _, opt := range []tcpip.SettableTransportProtocolOption{&sack, &rack, &reno} {
		if terr := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); terr != nil {
			return fmt.Errorf("tuning TCP: %v", terr)
		}
	}
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultReceiveBufferSize, Max: 8 << 20}
	snd := tcpip.TCPSendBufferSizeRangeOption{Min: tcp.MinBufferSize, Default: tcp.DefaultSendBufferSize, Max: 6 << 20}
	for _, opt := range []tcpip.SettableTransportProtocolOption{&rcv, &snd} {
		if terr := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); terr != nil {
			return fmt.Errorf("tuning TCP buffers: %v", terr)
		}
	}
	return nil
}

// Close stops the stack.
func (st *Stack) Close() { st.close(true) }

// close stops the stack; started says whether the TUN's reader runs.
func (st *Stack) close(started bool) {
	if st.tun != nil {
		st.tun.close(started) // first: no packet is delivered into a closing stack
	}
	st.s.Close()
	st.s.Wait()
}

// Flow is a TCP flow whose SYN is not answered yet.
type Flow struct {
	req  *tcp.ForwarderRequest
	s    *stack.Stack
	done bool
}

// Src is where the command connects from; Dst where it connects to.
func (f *Flow) Src() netip.AddrPort {
	id := f.req.ID()
	return addrPort(id.RemoteAddress, id.RemotePort)
}

// Dst is the address and port the command connected to.
func (f *Flow) Dst() netip.AddrPort { id := f.req.ID(); return addrPort(id.LocalAddress, id.LocalPort) }

// Refuse answers the SYN with a RST: the command sees "connection refused".
func (f *Flow) Refuse() {
	if !f.done {
		f.done = true
		f.req.Complete(true)
	}
}

// Accept completes the handshake and returns the connection.
func (f *Flow) Accept() (net.Conn, error) {
	if f.done {
		return nil, errors.New("accepting a flow: already answered")
	}
	f.done = true
	var wq waiter.Queue
	ep, terr := f.req.CreateEndpoint(&wq)
	if terr != nil {
		f.req.Complete(true)
		return nil, fmt.Errorf("accepting a flow: %v", terr)
	}
	f.req.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	return gonet.NewTCPConn(&wq, ep), nil
}

func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip.Unmap(), port)
}
