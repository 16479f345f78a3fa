package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/regate/regate/internal/admin"
	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/childenv"
	"github.com/regate/regate/proxy"
)

// defaultMaxAttemptListeners bounds the attempts with listeners of their
// own when proxy.max_attempt_listeners is 0.
const defaultMaxAttemptListeners = 64

var _ admin.AttemptListeners = (*attemptListeners)(nil)

// attemptListeners are serve's listeners bound to single attempts (README,
// Admin API: "listeners": true), one of each kind serve listens with.
// They listen on 127.0.0.1 only, whatever the shared listeners' addresses;
// the proxy's guard refuses them as destinations from the moment they are
// open; at most max attempts have them; they close at the attempt's
// removal, its expiry or shutdown, cutting what they accepted. Their
// tunnels count against proxy.max_tunnels and the attempt's share like any
// other of the attempt's.
type attemptListeners struct {
	proxy *proxy.Proxy
	specs []listenerSpec
	max   int
	log   *slog.Logger

	mu     sync.Mutex
	open   map[string]*attemptSet
	closed bool
}

// attemptSet is one attempt's listeners.
type attemptSet struct {
	ls    []childenv.Listener
	lns   []net.Listener
	timer *time.Timer // the attempt's expiry; nil: none
}

// newAttemptListeners mirrors the kinds of the open shared listeners.
func newAttemptListeners(p *proxy.Proxy, shared listeners, max int, log *slog.Logger) *attemptListeners {
	if max == 0 {
		max = defaultMaxAttemptListeners
	}
	al := &attemptListeners{proxy: p, max: max, log: log, open: map[string]*attemptSet{}}
	for _, l := range shared {
		if l.serveFor != nil {
			al.specs = append(al.specs, l.listenerSpec)
		}
	}
	return al
}

// Open implements admin.AttemptListeners.
func (al *attemptListeners) Open(a attempt.Attempt) ([]childenv.Listener, error) {
	al.mu.Lock()
	defer al.mu.Unlock()
	switch {
	case al.closed:
		return nil, proxy.ErrClosed
	case al.open[a.ID] != nil:
		return nil, fmt.Errorf("attempt %q already has listeners", a.ID)
	case len(al.open) >= al.max:
		return nil, fmt.Errorf("%w (proxy.max_attempt_listeners %d)", admin.ErrListenerLimit, al.max)
	case len(al.specs) == 0:
		return nil, errors.New("no proxy listener to mirror")
	}
	set := &attemptSet{}
	var lc net.ListenConfig
	for _, spec := range al.specs {
		ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
		if err != nil {
			set.close()
			return nil, fmt.Errorf("opening %s listener for attempt %q: %w", spec.name, a.ID, err)
		}
		set.lns = append(set.lns, ln)
		set.ls = append(set.ls, childenv.Listener{Kind: spec.env, Addr: ln.Addr().String()})
	}
	for i, spec := range al.specs {
		// Refused as a destination before anything is accepted: nobody
		// reaches the attempt's identity by tunnelling into it.
		al.proxy.Protect(set.lns[i].Addr())
		go func(ln net.Listener) {
			if err := spec.serveFor(al.proxy, ln, a.ID); err != nil && !errors.Is(err, proxy.ErrClosed) {
				al.log.Error("attempt listener stopped", "attempt", a.ID, "listener", spec.name, "error", err)
			}
		}(set.lns[i])
	}
	if !a.Expires.IsZero() {
		set.timer = time.AfterFunc(time.Until(a.Expires), func() { al.closeSet(a.ID, set) })
	}
	al.open[a.ID] = set
	return set.ls, nil
}

// Close implements admin.AttemptListeners.
func (al *attemptListeners) Close(id string) {
	al.mu.Lock()
	set := al.open[id]
	al.mu.Unlock()
	if set != nil {
		al.closeSet(id, set)
	}
}

// closeSet closes set if it is still id's (an expiry timer may fire after
// the id was registered again).
func (al *attemptListeners) closeSet(id string, set *attemptSet) {
	al.mu.Lock()
	if al.open[id] == set {
		delete(al.open, id)
	}
	al.mu.Unlock()
	set.close()
}

// Listeners implements admin.AttemptListeners.
func (al *attemptListeners) Listeners(id string) []childenv.Listener {
	al.mu.Lock()
	defer al.mu.Unlock()
	if set := al.open[id]; set != nil {
		return append([]childenv.Listener(nil), set.ls...)
	}
	return nil
}

// shutdown refuses new listeners and stops the expiry timers; the proxy's
// Shutdown closes and drains the open ones with the shared listeners.
func (al *attemptListeners) shutdown() {
	al.mu.Lock()
	defer al.mu.Unlock()
	al.closed = true
	for _, set := range al.open {
		if set.timer != nil {
			set.timer.Stop()
		}
	}
}

// close closes the listeners; the proxy then cuts what they accepted.
func (s *attemptSet) close() {
	if s.timer != nil {
		s.timer.Stop()
	}
	for _, ln := range s.lns {
		_ = ln.Close()
	}
}
