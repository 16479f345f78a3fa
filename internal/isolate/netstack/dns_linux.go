package netstack

import (
	"encoding/binary"
	"io"
	"math"
	"net"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// answerDNSUDP answers one DNS datagram where it arrives, as a datagram
// from the address and port it was sent to: no endpoint, no goroutine, so
// a command's lookups (a new source port each) leave nothing behind. A
// malformed datagram, or one answer declines, is dropped.
func answerDNSUDP(s *stack.Stack, id stack.TransportEndpointID, pkt *stack.PacketBuffer, answer func([]byte) []byte) {
	hdr := header.UDP(pkt.TransportHeader().Slice())
	nh := pkt.Network()
	lengthOK, sumOK := header.UDPValid(hdr, func() uint16 { return pkt.Data().Checksum() }, uint16(pkt.Data().Size()),
		pkt.NetworkProtocolNumber, nh.SourceAddress(), nh.DestinationAddress(), pkt.RXChecksumValidated)
	if !lengthOK || !sumOK {
		return
	}
	query := pkt.Data().AsRange().Capped(int(hdr.Length()) - header.UDPMinimumSize).ToSlice()
	if out := answer(query); out != nil {
		_ = sendUDP(s, id, pkt.NetworkProtocolNumber, out)
	}
}

// sendUDP sends payload back along id: from its local address and port to
// its remote ones.
func sendUDP(s *stack.Stack, id stack.TransportEndpointID, proto tcpip.NetworkProtocolNumber, payload []byte) tcpip.Error {
	r, terr := s.FindRoute(nicID, id.LocalAddress, id.RemoteAddress, proto, false)
	if terr != nil {
		return terr
	}
	defer r.Release()
	if len(payload) > int(r.MTU())-header.UDPMinimumSize {
		return &tcpip.ErrMessageTooLong{}
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.UDPMinimumSize + int(r.MaxHeaderLength()),
		Payload:            buffer.MakeWithData(payload),
	})
	defer pkt.DecRef()
	h := header.UDP(pkt.TransportHeader().Push(header.UDPMinimumSize))
	pkt.TransportProtocolNumber = udp.ProtocolNumber
	length := uint16(pkt.Size())
	h.Encode(&header.UDPFields{SrcPort: id.LocalPort, DstPort: id.RemotePort, Length: length})
	if r.RequiresTXTransportChecksum() {
		sum := h.CalculateChecksum(checksum.Combine(r.PseudoHeaderChecksum(udp.ProtocolNumber, length), checksum.Checksum(payload, 0)))
		if sum != math.MaxUint16 { // RFC 768: a computed 0 is sent as all ones
			sum = ^sum
		}
		h.SetChecksum(sum)
	}
	return r.WritePacket(stack.NetworkHeaderParams{Protocol: udp.ProtocolNumber, TTL: r.DefaultTTL()}, pkt)
}

// serveDNSTCP answers the queries of one DNS-over-TCP connection (each
// message after its two-byte length, RFC 1035 §4.2.2), until it is idle.
func serveDNSTCP(c net.Conn, answer func([]byte) []byte) {
	defer c.Close()
	var size [2]byte
	for {
		if err := c.SetReadDeadline(time.Now().Add(dnsIdle)); err != nil {
			return
		}
		if _, err := io.ReadFull(c, size[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(size[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		out := answer(q)
		if out == nil || len(out) > 0xffff {
			return
		}
		msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(out)), uint16(len(out)))
		if _, err := c.Write(append(msg, out...)); err != nil {
			return
		}
	}
}

// dnsIdle is how long a DNS-over-TCP connection waits for its next query.
const dnsIdle = 10 * time.Second
