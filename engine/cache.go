package engine

import (
	"encoding/binary"
	"maps"
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"golang.org/x/sync/singleflight"
)

// A proxy asks about the same few destinations again and again, and the
// policy is a pure function of its input and data unless it calls a
// non-deterministic built-in. So the engine remembers decisions, keyed by
// exactly the input fields the compiled policy reads, until the next store
// commit (any policy or data change) replaces the cache. Decide opens its
// read transaction before it loads the cache, and commits run exclusively,
// so a cached decision always belongs to the data it is served with.

// Filling the cache: every commit starts an empty cache, and then every
// client asks again at once. Concurrent misses of one key share one
// evaluation (singleflight, per cache, so never across commits): the
// callers that waited count as cache hits, and get the same decision, or
// the same fail-closed deny if that evaluation failed.

// maxCacheEntries bounds the cache; a full cache starts over.
const maxCacheEntries = 16384

type cacheEntry struct {
	d   Decision
	raw any
}

type decisionCache struct {
	mu sync.Mutex
	m  map[string]cacheEntry
	// flight lets one caller per key evaluate on a miss while the others
	// wait for its answer.
	flight singleflight.Group
}

func newDecisionCache() *decisionCache {
	return &decisionCache{m: make(map[string]cacheEntry)}
}

func (c *decisionCache) get(key string) (cacheEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[key]
	return e, ok
}

func (c *decisionCache) put(key string, e cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCacheEntries {
		clear(c.m)
	}
	c.m[key] = e
}

// inputFields is the set of top-level input fields a policy reads; all is
// set when it reads input as a whole or by a computed key.
type inputFields struct {
	all    bool
	fields map[string]bool
}

// cachePlan inspects the compiled policy: whether decisions may be cached
// (no non-deterministic built-in anywhere) and which input fields key them.
func cachePlan(c *ast.Compiler) (bool, inputFields) {
	f := inputFields{fields: map[string]bool{}}
	deterministic := true
	for _, m := range c.Modules {
		ast.WalkRefs(m, func(r ast.Ref) bool {
			if !r.HasPrefix(ast.InputRootRef) {
				return false
			}
			if len(r) < 2 {
				f.all = true
				return false
			}
			if s, ok := r[1].Value.(ast.String); ok {
				f.fields[string(s)] = true
			} else {
				f.all = true
			}
			return false
		})
		ast.WalkExprs(m, func(x *ast.Expr) bool {
			if !x.IsCall() {
				return false
			}
			if b, ok := ast.BuiltinMap[x.Operator().String()]; ok && b.Nondeterministic {
				deterministic = false
			}
			return false
		})
	}
	return deterministic, f
}

// allFields is every input field: the whole input.
var allFields = inputFields{all: true}

func (f inputFields) has(name string) bool { return f.all || f.fields[name] }

// cacheKey encodes the fields of in that the policy reads.
func (f inputFields) cacheKey(in *Input) string {
	b := make([]byte, 0, 96)
	str := func(tag byte, s string) {
		b = append(b, tag)
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	if f.has("host") || f.has("candidates") {
		str('h', in.Host)
	}
	if f.has("port") || f.has("candidates") {
		b = binary.AppendUvarint(append(b, 'p'), uint64(in.Port))
	}
	if f.has("scheme") {
		str('s', in.Scheme)
	}
	if f.has("method") {
		str('m', in.Method)
	}
	if f.has("attempt_id") {
		str('a', in.AttemptID)
	}
	if f.has("path") {
		str('u', in.Path)
	}
	if f.has("host_is_ip") && in.HostIsIP {
		b = append(b, 'i')
	}
	if f.has("tls") && in.TLS != nil {
		str('t', in.TLS.SNI)
		if in.TLS.Inspected {
			b = append(b, 'I')
		}
	}
	if f.has("headers") && in.Headers != nil {
		for _, k := range slices.Sorted(maps.Keys(in.Headers)) {
			str('H', k)
			str('V', in.Headers[k])
		}
	}
	if f.has("secrets") {
		for _, n := range in.Secrets {
			str('S', n)
		}
	}
	if f.has("client") && in.Client != nil {
		str('c', in.Client.Addr)
		str('l', in.Client.Listener)
	}
	if f.has("transparent") && in.Transparent != nil {
		str('f', in.Transparent.Addr)
	}
	if f.has("attempt") && in.Attempt != nil {
		in.Attempt.appendKey(str)
	}
	return string(b)
}

func (a *Attempt) appendKey(str func(byte, string)) {
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		str('k', k)
		str('v', a.Labels[k])
	}
	for _, p := range a.Allow {
		str('A', p)
	}
	for _, p := range a.Deny {
		str('D', p)
	}
	if a.Audit {
		str('W', "") // input.attempt.audit, which a policy may read
	}
}
