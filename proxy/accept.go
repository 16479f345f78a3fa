package proxy

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// Accept backoff, as net/http's Server: 5 ms doubling up to 1 s.
const (
	acceptMinDelay = 5 * time.Millisecond
	acceptMaxDelay = time.Second
	acceptWarnGap  = time.Second // at most one warning a second
)

// acceptRetry keeps a listener serving through accept errors that pass:
// out of file descriptors or kernel memory, a connection aborted before it
// was accepted, a timeout (temporaryAccept). It sleeps with backoff and
// warns at most once a second; one listener's loop owns it.
type acceptRetry struct {
	delay  time.Duration
	warned time.Time
	missed int // errors since the last warning
}

// accept returns ln's next connection, or its first error that is not
// temporary (net.ErrClosed after Close).
func (a *acceptRetry) accept(ln net.Listener, log *slog.Logger, listener string) (net.Conn, error) {
	for {
		c, err := ln.Accept()
		if err == nil {
			a.delay = 0
			return c, nil
		}
		if !temporaryAccept(err) {
			return nil, err
		}
		a.delay = min(max(2*a.delay, acceptMinDelay), acceptMaxDelay)
		a.missed++
		if now := time.Now(); now.Sub(a.warned) >= acceptWarnGap {
			log.Warn("accepting connections failed; retrying", "listener", listener, "error", err,
				"errors", a.missed, "retry_in", a.delay)
			a.warned, a.missed = now, 0
		}
		time.Sleep(a.delay)
	}
}

// temporaryAccept reports whether an accept error passes by itself: one of
// temporaryErrnos (per platform), or a net.Error that says it times out or
// is temporary. A closed listener never is.
func temporaryAccept(err error) bool {
	if err == nil || errors.Is(err, net.ErrClosed) {
		return false
	}
	for _, errno := range temporaryErrnos {
		if errors.Is(err, errno) {
			return true
		}
	}
	var ne interface {
		Timeout() bool
		Temporary() bool
	}
	return errors.As(err, &ne) && (ne.Timeout() || ne.Temporary())
}
