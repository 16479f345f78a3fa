package engine

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
)

// Event is one decision-log event: OPA's EventV1 (after OPA's masking and
// drop rules) plus the fields regate filters on, taken before masking.
type Event struct {
	logs.EventV1
	Allow     bool   `json:"-"` // what was enforced
	Audit     bool   `json:"-"`
	AttemptID string `json:"-"`
	Host      string `json:"-"`
	Port      int    `json:"-"`
	Scheme    string `json:"-"`
	Method    string `json:"-"`
	Reason    string `json:"-"`
	// Client is the client connection's address (input.client.addr): the
	// requests inside a tunnel share their tunnel's.
	Client string `json:"-"`
	// Query marks an evaluation through OPA's REST API (POST /v1/data/…),
	// not a connection decision: nothing was allowed or denied.
	Query bool `json:"-"`
}

// MarshalJSON writes the OPA event only.
func (ev *Event) MarshalJSON() ([]byte, error) { return encodeEvent(nil, &ev.EventV1) }

// encodeEvent appends ev's JSON: appendEventJSON's, or encoding/json's
// for what it does not encode.
func encodeEvent(b []byte, ev *logs.EventV1) ([]byte, error) {
	if out, ok := appendEventJSON(b, ev); ok {
		return out, nil
	}
	j, err := json.Marshal(ev)
	return append(b, j...), err
}

// item is one queued decision.
type item struct {
	info    *server.Info
	in      Input // logged as info.InputAST, built off the hot path
	ev      Event
	barrier func() // set on Flush's marker, which carries no event
}

// pipeline delivers decision events off the hot path: a bounded queue, one
// worker, OPA's decision-log plugin (mask, drop, upload), then regate's
// sinks: a JSON-lines writer, the ring buffer, observers and subscribers.
type pipeline struct {
	q       chan *item
	stopc   chan struct{}
	done    chan struct{}
	opa     *logs.Plugin
	out     *lineWriter // the JSON-lines sink, flushed flushLinger after the queue empties
	line    []byte      // the worker's encoding buffer
	ring    *ring
	metrics *collectors
	cur     atomic.Pointer[item] // the item being delivered, for the sink plugin
	running atomic.Bool
	// viaOPA is set while OPA's decision-log plugin has work to do (upload,
	// console, a system.log mask or drop policy); otherwise events skip it.
	viaOPA atomic.Bool
	labels map[string]string
	mu     sync.Mutex
	obs    map[int]func(*Event)
	subs   map[int]*subscriber
	nextID int
}

func newPipeline(cfg Config, m *collectors) *pipeline {
	return &pipeline{
		q:       make(chan *item, cfg.LogQueue),
		stopc:   make(chan struct{}),
		done:    make(chan struct{}),
		out:     newLineWriter(cfg.DecisionLog, cfg.Logger.With("component", "engine"), m),
		ring:    newRing(cfg.RingSize),
		metrics: m,
		obs:     map[int]func(*Event){},
		subs:    map[int]*subscriber{},
	}
}

// enqueueQuery queues an evaluation of OPA's REST API, whose server has
// filled info (input, result, path) as OPA's server fills it; it never
// blocks.
func (p *pipeline) enqueueQuery(info *server.Info) {
	select {
	case p.q <- &item{info: info, ev: Event{Query: true}}:
	default:
		p.metrics.logDropped.Inc()
	}
}

// enqueue never blocks: a full queue drops the event and counts it.
func (p *pipeline) enqueue(info *server.Info, d *Decision, in Input) {
	it := &item{info: info, in: in, ev: Event{
		Allow: d.Allow, Audit: d.Audit, Reason: d.Reason,
		AttemptID: in.AttemptID, Host: in.Host, Port: in.Port, Scheme: in.Scheme, Method: in.Method,
	}}
	if in.Client != nil {
		it.ev.Client = in.Client.Addr
	}
	select {
	case p.q <- it:
	default:
		p.metrics.logDropped.Inc()
	}
}

func (p *pipeline) start(opa *logs.Plugin, labels map[string]string) {
	p.opa = opa
	p.labels = labels
	p.running.Store(true)
	go p.run()
}

// flushLinger is how long the JSON lines of an emptied queue wait for
// more before they are written: under load, one write carries the events
// of a millisecond instead of one each (a write cost about as much as
// encoding the event); idle, a line is on disk a millisecond after it
// was decided.
const flushLinger = time.Millisecond

func (p *pipeline) run() {
	defer close(p.done)
	linger := time.NewTimer(flushLinger)
	linger.Stop()
	lingering := false
	for {
		select {
		case it := <-p.q:
			p.deliver(it)
			if len(p.q) == 0 && !lingering && p.out != nil {
				linger.Reset(flushLinger)
				lingering = true
			}
		case <-linger.C:
			lingering = false
			p.flush()
		case <-p.stopc:
			for {
				select {
				case it := <-p.q:
					p.deliver(it)
				default:
					p.flush()
					return
				}
			}
		}
	}
}

// flush writes the JSON lines buffered: a burst of decisions becomes one
// write, and nothing waits in the buffer longer than flushLinger once the
// queue is empty.
func (p *pipeline) flush() {
	if p.out != nil {
		p.out.flush()
	}
}

// stop delivers what is queued, within ctx.
func (p *pipeline) stop(ctx context.Context) {
	if !p.running.Load() {
		return
	}
	select {
	case <-p.stopc:
		return
	default:
		close(p.stopc)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
	}
}

// deliver hands the event to OPA's decision-log plugin, which masks or
// drops it and calls back into sinkPlugin.Log with the final EventV1.
func (p *pipeline) deliver(it *item) {
	if it.barrier != nil {
		p.flush()
		it.barrier()
		return
	}
	if p.opa == nil || !p.viaOPA.Load() {
		// No mask or drop policy to evaluate: the input is logged straight
		// from the struct, without building an AST for it.
		if !it.ev.Query {
			var in any = logInput{&it.in}
			it.info.Input = &in
		}
		p.fanout(it, p.event(it.info))
		return
	}
	if !it.ev.Query {
		it.info.InputAST = it.in.LogAST()
		it.info.Input = inputValue(it.info.InputAST)
	}
	p.cur.Store(it)
	defer p.cur.Store(nil)
	if err := p.opa.Log(context.Background(), it.info); err != nil {
		p.metrics.logErrors.Inc()
	}
}

// event builds the EventV1 OPA's plugin would build, for events that need
// none of its processing.
func (p *pipeline) event(info *server.Info) logs.EventV1 {
	ev := logs.EventV1{
		Labels: p.labels, DecisionID: info.DecisionID, Path: info.Path,
		Input: info.Input, Result: info.Results, Timestamp: info.Timestamp,
		Custom: info.Custom, NDBuiltinCache: info.NDBuiltinCache,
		Query: info.Query, RequestedBy: info.RemoteAddr,
	}
	if len(info.Bundles) > 0 {
		ev.Bundles = make(map[string]logs.BundleInfoV1, len(info.Bundles))
		for name, b := range info.Bundles {
			ev.Bundles[name] = logs.BundleInfoV1{Revision: b.Revision}
		}
	}
	if info.Metrics != nil {
		ev.Metrics = info.Metrics.All()
	}
	return ev
}

// fanout writes the final event to every regate sink.
func (p *pipeline) fanout(it *item, v1 logs.EventV1) {
	ev := it.ev
	ev.EventV1 = v1
	if p.out != nil {
		var err error
		if p.line, err = encodeEvent(p.line[:0], &ev.EventV1); err == nil {
			p.out.add(p.line)
		} else {
			p.metrics.logErrors.Inc()
		}
	}
	p.ring.add(&ev)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !ev.Query { // observers follow connections (regate run's summary)
		for _, f := range p.obs {
			f(&ev)
		}
	}
	for id, s := range p.subs {
		if s.filter != nil && !s.filter(&ev) {
			continue
		}
		select {
		case s.c <- &ev:
		default: // a slow reader is dropped rather than slowing decisions
			close(s.c)
			delete(p.subs, id)
			p.metrics.subscribersDropped.Inc()
		}
	}
}
