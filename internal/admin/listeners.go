package admin

import (
	"errors"

	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/childenv"
)

// ErrListenerLimit is returned by AttemptListeners.Open when as many
// attempts as allowed have listeners of their own.
var ErrListenerLimit = errors.New("too many attempts with listeners of their own")

// AttemptListeners opens proxy listeners bound to one attempt, for
// clients that send no proxy credentials (the JVM): whoever connects to
// them is that attempt. cmd/regate serves them with the proxy.
type AttemptListeners interface {
	// Open opens loopback listeners bound to a and serves them until
	// Close or a's expiry; ErrListenerLimit (wrapped) when too many are
	// open.
	Open(a attempt.Attempt) ([]childenv.Listener, error)
	// Close closes the listeners of attempt id and every connection they
	// accepted; nothing when it has none.
	Close(id string)
	// Listeners are the open listeners of attempt id (nil: none).
	Listeners(id string) []childenv.Listener
}

// listenerNames names each kind of listener as /v1/status does.
func listenerNames(ls []childenv.Listener) map[string]string {
	if len(ls) == 0 {
		return nil
	}
	m := make(map[string]string, len(ls))
	for _, l := range ls {
		switch l.Kind {
		case childenv.HTTP:
			m["http"] = l.Addr
		case childenv.SOCKS5:
			m["socks5"] = l.Addr
		}
	}
	return m
}
