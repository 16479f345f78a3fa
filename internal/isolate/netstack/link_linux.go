package netstack

import (
	"fmt"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/rawfile"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// tunLink is the TUN device's link: fdbased writes to it, and its own
// reader delivers each packet into the stack on the reading goroutine,
// where fdbased's dispatcher would hand it to a processor goroutine
// first: one goroutine hop less per packet the command sends (a new
// connection's SYN and ACK, each DNS query). The veth's AF_PACKET ring
// keeps fdbased's dispatcher.
type tunLink struct {
	*fdbased.InjectableEndpoint
	fd, stop int // stop: an eventfd that ends the reader
	mtu      int
	done     chan struct{}
}

func newTUNLink(fd int, mtu uint32, caps stack.LinkEndpointCapabilities) (*tunLink, error) {
	stop, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("creating an eventfd: %w", err)
	}
	ep, err := fdbased.NewInjectable(fd, mtu, caps) // sets fd non-blocking
	if err != nil {
		unix.Close(stop)
		return nil, err
	}
	return &tunLink{InjectableEndpoint: ep, fd: fd, stop: stop, mtu: int(mtu), done: make(chan struct{})}, nil
}

// start reads packets until close.
func (l *tunLink) start() { go l.read() }

// close stops the reader (if started) and waits for it.
func (l *tunLink) close(started bool) {
	if started {
		var one = [8]byte{1}
		_, _ = unix.Write(l.stop, one[:])
		<-l.done
	}
	unix.Close(l.stop)
}

// read delivers each packet read, until stopped or the device fails. A
// large packet keeps the view it was read into; a small one is copied
// out of it, so that the next read reuses it.
func (l *tunLink) read() {
	defer close(l.done)
	var v *buffer.View
	for {
		if v == nil {
			v = buffer.NewViewSize(l.mtu)
		}
		b := v.AsSlice()
		iov := []unix.Iovec{{Base: &b[0]}}
		iov[0].SetLen(len(b))
		n, errno := rawfile.BlockingReadvUntilStopped(l.stop, l.fd, iov)
		switch {
		case n == -1:
			v.Release()
			return
		case errno == unix.EINTR:
			continue
		case errno != 0:
			v.Release()
			return
		case n == 0:
			continue
		}
		var payload buffer.Buffer
		if n <= smallPacket {
			payload = buffer.MakeWithView(buffer.NewViewWithData(b[:n]))
		} else {
			v.CapLength(n)
			payload, v = buffer.MakeWithView(v), nil
		}
		proto := header.IPv4ProtocolNumber
		if b[0]>>4 == 6 {
			proto = header.IPv6ProtocolNumber
		}
		pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
		l.InjectInbound(proto, pkt)
		pkt.DecRef()
	}
}

// smallPacket is the size up to which a packet is copied out of the read
// buffer.
const smallPacket = 4096
