package proxy

import (
	"errors"
	"fmt"
)

// TLS constants of the ClientHello parser.
const (
	recordTypeHandshake   = 0x16
	handshakeClientHello  = 0x01
	extensionServerName   = 0x0000
	serverNameHostName    = 0x00
	maxRecordPayload      = 16384 + 2048 // TLSCiphertext bound
	maxClientHelloMessage = 16 << 10
)

var (
	// errNeedMore: the bytes so far are a valid prefix of a ClientHello.
	errNeedMore = errors.New("incomplete ClientHello")
	// errMalformedHello: the bytes begin as TLS but are no valid ClientHello.
	errMalformedHello = errors.New("malformed TLS ClientHello")
)

// clientHelloSNI returns the host_name of the server_name extension of the
// ClientHello in the TLS records at the start of b ("" when it has none). b
// must start with a handshake record. Duplicate server_name extensions or
// host names are malformed: a server might honour another one than we check.
func clientHelloSNI(b []byte) (string, error) {
	msg, err := handshakeMessage(b)
	if err != nil {
		return "", err
	}
	return parseClientHello(msg)
}

// handshakeMessage reassembles the first handshake message from one or
// more handshake records.
func handshakeMessage(b []byte) ([]byte, error) {
	var msg []byte
	for {
		if len(b) < 5 {
			return nil, errNeedMore
		}
		n := int(b[3])<<8 | int(b[4])
		switch {
		case b[0] != recordTypeHandshake:
			return nil, fmt.Errorf("%w: record type %d", errMalformedHello, b[0])
		case b[1] != 3:
			return nil, fmt.Errorf("%w: record version %d.%d", errMalformedHello, b[1], b[2])
		case n == 0 || n > maxRecordPayload:
			return nil, fmt.Errorf("%w: record length %d", errMalformedHello, n)
		}
		if len(b) < 5+n {
			return nil, errNeedMore
		}
		msg = append(msg, b[5:5+n]...)
		b = b[5+n:]
		if len(msg) < 4 {
			continue
		}
		if msg[0] != handshakeClientHello {
			return nil, fmt.Errorf("%w: handshake type %d", errMalformedHello, msg[0])
		}
		size := int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3])
		if size > maxClientHelloMessage {
			return nil, fmt.Errorf("%w: ClientHello of %d bytes", errMalformedHello, size)
		}
		if len(msg) >= 4+size {
			return msg[4 : 4+size], nil
		}
	}
}

// parseClientHello reads the server_name of a ClientHello body.
func parseClientHello(body []byte) (string, error) {
	r := byteReader{b: body}
	r.skip(2 + 32) // legacy_version, random
	r.vec8()       // legacy_session_id
	r.vec16()      // cipher_suites
	r.vec8()       // legacy_compression_methods
	if r.bad {
		return "", fmt.Errorf("%w: truncated", errMalformedHello)
	}
	if len(r.b) == 0 {
		return "", nil // no extensions
	}
	exts := byteReader{b: r.vec16()}
	if r.bad || len(r.b) != 0 {
		return "", fmt.Errorf("%w: bad extensions length", errMalformedHello)
	}
	sni, found := "", false
	for len(exts.b) > 0 && !exts.bad {
		typ := exts.u16()
		data := exts.vec16()
		if exts.bad || typ != extensionServerName {
			continue
		}
		if found {
			return "", fmt.Errorf("%w: duplicate server_name extension", errMalformedHello)
		}
		found = true
		name, err := parseServerName(data)
		if err != nil {
			return "", err
		}
		sni = name
	}
	if exts.bad {
		return "", fmt.Errorf("%w: truncated extension", errMalformedHello)
	}
	return sni, nil
}

func parseServerName(data []byte) (string, error) {
	ext := byteReader{b: data}
	list := byteReader{b: ext.vec16()}
	if ext.bad || len(ext.b) != 0 || len(list.b) == 0 {
		return "", fmt.Errorf("%w: bad server_name extension", errMalformedHello)
	}
	name := ""
	for len(list.b) > 0 {
		typ := list.u8()
		v := list.vec16()
		if list.bad {
			return "", fmt.Errorf("%w: truncated server_name", errMalformedHello)
		}
		if typ != serverNameHostName {
			continue
		}
		if name != "" || len(v) == 0 {
			return "", fmt.Errorf("%w: empty or repeated host_name", errMalformedHello)
		}
		name = string(v)
	}
	return name, nil
}

// byteReader reads TLS vectors; any overrun sets bad and yields zeros.
type byteReader struct {
	b   []byte
	bad bool
}

func (r *byteReader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *byteReader) skip(n int) { r.take(n) }

func (r *byteReader) u8() int {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return int(v[0])
}

func (r *byteReader) u16() int {
	v := r.take(2)
	if v == nil {
		return 0
	}
	return int(v[0])<<8 | int(v[1])
}

func (r *byteReader) vec8() []byte  { return r.take(r.u8()) }
func (r *byteReader) vec16() []byte { return r.take(r.u16()) }
