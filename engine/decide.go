package engine

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/server"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/topdown/builtins"
)

var decisionRef = ast.MustParseRef(Query)

// prepared is one compiled policy: the prepared query and the bundle
// revisions it was built from. It is swapped atomically on every compiler
// change and never mutated.
type prepared struct {
	pq        rego.PreparedEvalQuery
	bundles   map[string]server.BundleInfo
	at        time.Time
	cacheable bool
	fields    inputFields
	decides   bool // the policy defines data.regate.network.decision
}

// onCompile runs inside the store commit that installed a new compiler
// (OPA's compiler trigger), so no decision can open a transaction between
// the new policy being committed and its query being swapped in.
func (e *Engine) onCompile(txn storage.Transaction) {
	ctx := context.Background()
	pq, err := rego.New(
		rego.Query(Query),
		rego.Compiler(e.manager.GetCompiler()),
		rego.Store(e.store),
		rego.Transaction(txn),
	).PrepareForEval(ctx)
	if err != nil {
		// The compiler already compiled; preparing the query can only fail
		// on a broken query. Keep the previous one deciding.
		e.log.Error("preparing policy query; keeping the previous one", "error", err)
		e.status.reloadFailed(err)
		return
	}
	q := &prepared{pq: pq, bundles: readRevisions(ctx, e, txn), at: time.Now()}
	q.cacheable, q.fields = cachePlan(e.manager.GetCompiler())
	q.decides = len(e.manager.GetCompiler().GetRulesForVirtualDocument(decisionRef)) > 0
	q.cacheable = q.cacheable && !e.cfg.DisableCache
	e.query.Store(q)
	e.updateLogRouting()
	e.updateRevisionMetric()
	e.log.Info("policy compiled and deciding", "bundles", q.bundles)
}

func readRevisions(ctx context.Context, e *Engine, txn storage.Transaction) map[string]server.BundleInfo {
	names, err := bundle.ReadBundleNamesFromStore(ctx, e.store, txn)
	if err != nil {
		return nil
	}
	out := make(map[string]server.BundleInfo, len(names))
	for _, name := range names {
		rev, _ := bundle.ReadBundleRevisionFromStore(ctx, e.store, txn, name)
		out[name] = server.BundleInfo{Revision: rev}
	}
	return out
}

// Decide evaluates the policy for in and logs the decision. It fails closed:
// every error path returns a deny whose reason says why, together with the
// error for callers that want it. It never returns an allow with an error.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	start := time.Now()
	var ndbc builtins.NDBCache
	if e.ndbCache.Load() {
		ndbc = builtins.NDBCache{}
	}
	d, raw, m, err := e.evaluate(ctx, &in, ndbc)
	if err == nil && (e.cfg.Audit || in.Attempt.audits()) {
		// After the cache, which holds what the policy said: audit
		// mode changes what is enforced, never the policy's answer.
		d, raw = relax(d, raw)
	}
	d.ID = uuid.NewString()
	e.metrics.observe(d, time.Since(start))
	info := &server.Info{
		DecisionID: d.ID,
		Path:       DecisionPath,
		Timestamp:  start,
		Results:    &raw,
		Metrics:    m,
		Bundles:    e.revisions(),
		Error:      err,
	}
	if ndbc != nil {
		// OPA's nd_builtin_cache: the non-deterministic built-ins' results
		// this evaluation used, logged so that it can be replayed.
		if x, err := ast.JSON(ndbc.AsValue()); err == nil {
			info.NDBuiltinCache = &x
		}
	}
	e.logs.enqueue(info, &d, in)
	return d, err
}

// LogDecision logs a decision the proxy made itself (the SSRF guard) as a
// decision-log event like any policy decision, and returns its id.
func (e *Engine) LogDecision(in Input, d Decision) string {
	if d.ID == "" {
		d.ID = uuid.NewString()
	}
	e.metrics.observe(d, 0)
	var raw any = map[string]any{"allow": d.Allow, "reason": d.Reason, "rule": d.Rule}
	e.logs.enqueue(&server.Info{
		DecisionID: d.ID,
		Path:       DecisionPath,
		Timestamp:  time.Now(),
		Results:    &raw,
		Bundles:    e.revisions(),
	}, &d, in)
	return d.ID
}

func (e *Engine) revisions() map[string]server.BundleInfo {
	if q := e.query.Load(); q != nil {
		return q.bundles
	}
	return nil
}

// evaluate runs the prepared query in a read transaction opened before the
// query pointer is loaded, so data and policy always come from one commit.
//
// A deterministic policy's decisions are served from the cache of the
// current store commit (cache.go); only successful evaluations are cached.
func (e *Engine) evaluate(ctx context.Context, in *Input, ndbc builtins.NDBCache) (Decision, any, metrics.Metrics, error) {
	txn, err := e.store.NewTransaction(ctx)
	if err != nil {
		return denied(ReasonEvalError), nil, nil, err
	}
	defer e.store.Abort(ctx, txn)
	q := e.query.Load()
	if q == nil {
		return denied(ReasonNoPolicy), nil, nil, ErrNoPolicy
	}
	cache := e.cache.Load()
	if !q.cacheable || cache == nil {
		return e.run(ctx, q, txn, in, ndbc)
	}
	key := q.fields.cacheKey(in)
	if hit, ok := cache.get(key); ok {
		e.metrics.cacheHits.Inc()
		return hit.d, hit.raw, nil, nil
	}
	// A miss: the first caller of a key evaluates it, callers of the same
	// key meanwhile wait for its answer (cache.go, Filling the cache).
	evaluated := false
	v, err, _ := cache.flight.Do(key, func() (any, error) {
		if hit, ok := cache.get(key); ok {
			// Filled by an evaluation that ended since this caller looked.
			return evaluation{d: hit.d, raw: hit.raw}, nil
		}
		evaluated = true
		e.metrics.cacheMisses.Inc()
		// Not cut short when this caller goes away: others may be waiting.
		d, raw, m, err := e.run(context.WithoutCancel(ctx), q, txn, in, ndbc)
		if err == nil {
			cache.put(key, cacheEntry{d: d, raw: raw})
		}
		return evaluation{d, raw, m}, err
	})
	r := v.(evaluation)
	if !evaluated {
		// This caller waited for another's evaluation: it logs no metrics
		// of its own, and a failed evaluation fails it closed too.
		e.metrics.cacheHits.Inc()
		return r.d, r.raw, nil, err
	}
	return r.d, r.raw, r.m, err
}

// evaluation is what a decision-cache miss shares with the callers of the
// same key that waited for it.
type evaluation struct {
	d   Decision
	raw any
	m   metrics.Metrics
}

// run evaluates the prepared query in txn, within the decision timeout.
func (e *Engine) run(ctx context.Context, q *prepared, txn storage.Transaction, in *Input, ndbc builtins.NDBCache) (Decision, any, metrics.Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.DecisionTimeout)
	defer cancel()
	m := metrics.New()
	rs, err := q.pq.Eval(ctx, rego.EvalParsedInput(in.policyAST(q.fields)), rego.EvalTransaction(txn), rego.EvalMetrics(m),
		rego.EvalNDBuiltinCache(ndbc), rego.EvalInterQueryBuiltinCache(e.iqCache),
		rego.EvalInterQueryBuiltinValueCache(e.iqValueCache))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return denied(ReasonTimeout), nil, m, err
		}
		return denied(ReasonEvalError + ": " + err.Error()), nil, m, err
	}
	d, raw := fromResult(rs)
	return d, raw, m, nil
}

// resetCache runs inside every store commit: whatever changed, decisions
// are computed afresh.
func (e *Engine) resetCache(context.Context, storage.Transaction, storage.TriggerEvent) {
	e.cache.Store(newDecisionCache())
}

// inputValue is the JSON form of an input AST, for sinks that need it.
func inputValue(v ast.Value) *any {
	x, err := ast.JSON(v)
	if err != nil {
		return nil
	}
	return &x
}

// updateLogRouting sends events through OPA's decision-log plugin only when
// it has work to do: upload or console configured, or a mask/drop policy.
func (e *Engine) updateLogRouting() {
	e.logs.viaOPA.Store(opaLogsConfigured(e.manager.GetConfig().DecisionLogs) || hasLogPolicy(e.manager.GetCompiler()))
}

// hasLogPolicy reports whether the policy defines OPA's decision-log mask or
// drop rules, which only OPA's decision-log plugin applies.
func hasLogPolicy(c *ast.Compiler) bool {
	if c == nil {
		return false
	}
	for _, ref := range []string{"data.system.log.mask", "data.system.log.drop"} {
		if len(c.GetRulesWithPrefix(ast.MustParseRef(ref))) > 0 {
			return true
		}
	}
	return false
}
