package proxy

import "net"

// peekSupported: on Windows the h1Client is not used (net/http's
// Transport forwards every plain request).
const peekSupported = false

func peekIdle(net.Conn) bool { return false }
