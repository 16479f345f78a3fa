//go:build windows

package proxy

import "golang.org/x/sys/windows"

// temporaryErrnos are the accept errors that pass, as Winsock names them:
// out of sockets, of buffer space or memory, and a connection the client
// aborted or reset before it was accepted.
var temporaryErrnos = []error{
	windows.WSAEMFILE, windows.WSAENOBUFS, windows.ERROR_NOT_ENOUGH_MEMORY,
	windows.WSAECONNABORTED, windows.WSAECONNRESET,
}
