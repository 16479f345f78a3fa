//go:build unix

package proxy

import (
	"errors"
	"net"
	"syscall"
)

// waitReadable waits, without reading, until c has bytes, its peer's end
// of stream or an error to give (a MSG_PEEK of one byte, through the
// runtime's poller, under c's read deadline). A relay that waits here
// holds no buffer and no splice pipe while the tunnel is idle.
func waitReadable(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var b [1]byte
	return rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR)
	})
}
