//go:build unix

package proxy

import (
	"net"
	"syscall"
)

// peekSupported: peekIdle can look at a socket without reading it.
const peekSupported = true

// peekIdle reports whether an idle upstream connection can carry another
// request: nothing arrived on it while it was idle, neither bytes (an
// unsolicited response) nor the server's close. One non-blocking
// MSG_PEEK; a connection that is not a socket is never reused.
func peekIdle(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	idle := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, rerr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && idle
}
