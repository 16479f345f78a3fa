package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
)

// SOCKS5 protocol constants (RFC 1928, RFC 1929).
const (
	socksVersion       = 0x05
	socksAuthVersion   = 0x01
	methodNoAuth       = 0x00
	methodUserPass     = 0x02
	methodNoAcceptable = 0xff
	cmdConnect         = 0x01
	atypIPv4           = 0x01
	atypDomain         = 0x03
	atypIPv6           = 0x04

	replySucceeded          = 0x00
	replyGeneralFailure     = 0x01
	replyNotAllowed         = 0x02
	replyHostUnreachable    = 0x04
	replyConnectionRefused  = 0x05
	replyTTLExpired         = 0x06
	replyCommandUnsupported = 0x07
	replyAddressUnsupported = 0x08
)

var errSOCKS4 = errors.New("SOCKS4 is not supported")

// socksError is a request failure with the reply code that answers it;
// reply 0 means close without a reply.
type socksError struct {
	reply byte
	err   error
}

func (e *socksError) Error() string { return e.err.Error() }
func (e *socksError) Unwrap() error { return e.err }

func socksErr(reply byte, format string, args ...any) error {
	return &socksError{reply: reply, err: fmt.Errorf(format, args...)}
}

// socksRequest is a parsed request; host is a domain name as sent, or the
// text of an address.
type socksRequest struct {
	cmd  byte
	atyp byte
	host string
	port int
}

// readGreeting reads the version/method-selection message.
func readGreeting(r io.Reader) ([]byte, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading greeting: %w", err)
	}
	if hdr[0] == 0x04 {
		return nil, errSOCKS4
	}
	if hdr[0] != socksVersion {
		return nil, fmt.Errorf("reading greeting: version %d", hdr[0])
	}
	if hdr[1] == 0 {
		return nil, errors.New("reading greeting: no methods")
	}
	methods := make([]byte, hdr[1])
	if _, err := io.ReadFull(r, methods); err != nil {
		return nil, fmt.Errorf("reading greeting: %w", err)
	}
	return methods, nil
}

// readUserPass reads an RFC 1929 username/password request.
func readUserPass(r io.Reader) (user, pass string, err error) {
	var ver [1]byte
	if _, err := io.ReadFull(r, ver[:]); err != nil {
		return "", "", fmt.Errorf("reading credentials: %w", err)
	}
	if ver[0] != socksAuthVersion {
		return "", "", fmt.Errorf("reading credentials: version %d", ver[0])
	}
	if user, err = readVec8(r); err != nil {
		return "", "", fmt.Errorf("reading user name: %w", err)
	}
	if pass, err = readVec8(r); err != nil {
		return "", "", fmt.Errorf("reading password: %w", err)
	}
	return user, pass, nil
}

func readVec8(r io.Reader) (string, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return "", err
	}
	b := make([]byte, n[0])
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return string(b), nil
}

// readRequest reads a request. The whole request is read before an
// unsupported command or address type is reported, so that the reply is
// well-formed.
func readRequest(r io.Reader) (socksRequest, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return socksRequest{}, fmt.Errorf("reading request: %w", err)
	}
	if hdr[0] != socksVersion || hdr[2] != 0 {
		return socksRequest{}, socksErr(replyGeneralFailure, "reading request: version %d, reserved %d", hdr[0], hdr[2])
	}
	req := socksRequest{cmd: hdr[1], atyp: hdr[3]}
	var err error
	switch req.atyp {
	case atypIPv4, atypIPv6:
		b := make([]byte, map[byte]int{atypIPv4: 4, atypIPv6: 16}[req.atyp])
		if _, err = io.ReadFull(r, b); err == nil {
			a, _ := netip.AddrFromSlice(b)
			req.host = a.String()
		}
	case atypDomain:
		req.host, err = readVec8(r)
		if err == nil && req.host == "" {
			return req, socksErr(replyGeneralFailure, "reading request: empty domain name")
		}
	default:
		return req, socksErr(replyAddressUnsupported, "reading request: address type %d", req.atyp)
	}
	var port [2]byte
	if err == nil {
		_, err = io.ReadFull(r, port[:])
	}
	if err != nil {
		return req, fmt.Errorf("reading request: %w", err)
	}
	req.port = int(binary.BigEndian.Uint16(port[:]))
	if req.cmd != cmdConnect {
		return req, socksErr(replyCommandUnsupported, "command %d is not supported", req.cmd)
	}
	return req, nil
}

// writeReply writes a reply; bound is the upstream connection's local
// address on success.
func writeReply(w io.Writer, code byte, bound net.Addr) error {
	msg := []byte{socksVersion, code, 0, atypIPv4, 0, 0, 0, 0, 0, 0}
	if ap, err := netip.ParseAddrPort(addrString(bound)); err == nil {
		a := ap.Addr().Unmap()
		msg = append(msg[:3], atypIPv4)
		if a.Is6() {
			msg[3] = atypIPv6
		}
		msg = append(msg, a.AsSlice()...)
		msg = binary.BigEndian.AppendUint16(msg, ap.Port())
	}
	_, err := w.Write(msg)
	return err
}

func addrString(a net.Addr) string {
	if a == nil {
		return ""
	}
	return a.String()
}
