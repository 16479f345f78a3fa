//go:build unix

package proxy

import "syscall"

// temporaryErrnos are the accept errors that pass: out of descriptors
// (process, system), of buffer space or memory, and a connection the
// client aborted or reset before it was accepted.
var temporaryErrnos = []error{
	syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
	syscall.ECONNABORTED, syscall.ECONNRESET,
}
