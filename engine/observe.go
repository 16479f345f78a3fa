package engine

import (
	"context"
	"sync"

	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
)

// LogQuery logs an evaluation made through OPA's REST API on regate's store
// (the admin API's POST /v1/data/…): it is OPA's server decision logger,
// so each such evaluation is one event with the query's path, like `opa run
// --server` logs it, through the same sinks as connection decisions (OPA's
// plugin: mask, drop, upload, console; then the file, ring and streams).
// It never blocks; a full queue drops the event and counts it.
func (e *Engine) LogQuery(_ context.Context, info *server.Info) error {
	// The server's transaction ends when its handler returns; the worker
	// delivers later, and OPA's mask and drop rules open their own.
	info.Txn = nil
	e.logs.enqueueQuery(info)
	return nil
}

// Observe calls f for every connection decision event, in order, on the decision-log
// worker (f must be quick). The blocked-request observer of `regate run` is
// an Observe whose f keeps the deny events. The returned func unsubscribes.
func (e *Engine) Observe(f func(*Event)) (cancel func()) {
	p := e.logs
	p.mu.Lock()
	defer p.mu.Unlock()
	id := p.nextID
	p.nextID++
	p.obs[id] = f
	return func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		delete(p.obs, id)
	}
}

type subscriber struct {
	c      chan *Event
	filter func(*Event) bool
}

// Subscribe streams the events that pass filter (nil: all) on a channel of
// buf events. A subscriber that falls behind by buf events is dropped: its
// channel is closed. cancel also closes it.
func (e *Engine) Subscribe(buf int, filter func(*Event) bool) (<-chan *Event, func()) {
	p := e.logs
	if buf <= 0 {
		buf = 256
	}
	s := &subscriber{c: make(chan *Event, buf), filter: filter}
	p.mu.Lock()
	id := p.nextID
	p.nextID++
	p.subs[id] = s
	p.mu.Unlock()
	return s.c, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, ok := p.subs[id]; ok {
			delete(p.subs, id)
			close(s.c)
		}
	}
}

// Recent returns up to limit of the most recent events that pass filter,
// oldest first.
func (e *Engine) Recent(filter func(*Event) bool, limit int) []*Event {
	return e.logs.ring.recent(filter, limit)
}

// Flush waits until every event queued so far has been delivered, or ctx
// ends.
func (e *Engine) Flush(ctx context.Context) {
	done := make(chan struct{})
	var once sync.Once
	// Deliver a barrier through the queue: when the worker reaches it,
	// everything before it has been delivered.
	select {
	case e.logs.q <- &item{barrier: func() { once.Do(func() { close(done) }) }}:
	case <-ctx.Done():
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// ring is a fixed-size buffer of the latest events.
type ring struct {
	mu   sync.Mutex
	buf  []*Event
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]*Event, n)} }

func (r *ring) add(ev *Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.buf[r.next] = ev
	r.next = (r.next + 1) % len(r.buf)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ring) recent(filter func(*Event) bool, limit int) []*Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.next
	if r.full {
		n = len(r.buf)
	}
	if limit <= 0 || limit > n {
		limit = n
	}
	var out []*Event
	for i := 1; i <= n && len(out) < limit; i++ {
		ev := r.buf[(r.next-i+len(r.buf))%len(r.buf)]
		if filter == nil || filter(ev) {
			out = append(out, ev)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// sinkPlugin is the OPA plugin OPA's decision-log plugin hands each final
// (masked) event to; it forwards it to regate's sinks.
type sinkPlugin struct {
	p   *pipeline
	mgr *plugins.Manager
}

// Start reports the plugin ready: it has nothing to wait for.
func (s sinkPlugin) Start(context.Context) error {
	s.mgr.UpdatePluginStatus(sinkPluginName, &plugins.Status{State: plugins.StateOK})
	return nil
}

func (s sinkPlugin) Stop(context.Context)             {}
func (s sinkPlugin) Reconfigure(context.Context, any) {}

// Log receives the event OPA's plugin built from the item being delivered.
func (s sinkPlugin) Log(_ context.Context, v1 logs.EventV1) error {
	it := s.p.cur.Load()
	if it == nil || it.info == nil || it.info.DecisionID != v1.DecisionID {
		return nil
	}
	s.p.fanout(it, v1)
	return nil
}

type sinkFactory struct{ p *pipeline }

func (f sinkFactory) Validate(*plugins.Manager, []byte) (any, error) { return nil, nil }
func (f sinkFactory) New(m *plugins.Manager, _ any) plugins.Plugin {
	return sinkPlugin{p: f.p, mgr: m}
}
