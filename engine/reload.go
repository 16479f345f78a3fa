package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/plugins"
	"github.com/open-policy-agent/opa/v1/storage"
)

// Reload loads every local source and the configured data, compiles them
// together with what remote bundles and the admin API put in the store, and
// swaps the result in atomically. On any error nothing changes: the last good
// policy keeps deciding, the error is returned, counted and kept in Status.
func (e *Engine) Reload(ctx context.Context) error {
	if e.manager == nil {
		return errors.New("engine not started")
	}
	e.reload.Lock()
	defer e.reload.Unlock()
	err := e.reloadLocked(ctx)
	if err != nil {
		e.metrics.reloads.WithLabelValues("failure").Inc()
		e.status.reloadFailed(err)
		return fmt.Errorf("reloading policy: %w", err)
	}
	e.metrics.reloads.WithLabelValues("success").Inc()
	e.status.reloaded()
	e.updateRevisionMetric()
	return nil
}

func (e *Engine) reloadLocked(ctx context.Context) error {
	src, err := e.loadSources(e.verification())
	if err != nil {
		return err
	}
	data, err := e.dataDocument(src.data)
	if err != nil {
		return err
	}
	txnCtx := storage.NewContext()
	txn, err := e.store.NewTransaction(ctx, storage.TransactionParams{Write: true, Context: txnCtx})
	if err != nil {
		return fmt.Errorf("opening store transaction: %w", err)
	}
	if err := e.apply(ctx, txn, txnCtx, src, data); err != nil {
		e.store.Abort(ctx, txn)
		return err
	}
	if err := e.store.Commit(ctx, txn); err != nil {
		return fmt.Errorf("committing policy: %w", err)
	}
	e.status.setLocal(slices.Sorted(maps.Keys(src.modules)), writtenPaths(data))
	return nil
}

// apply writes sources and data into txn and compiles everything; the
// compiler rides on the transaction's context so that OPA's manager installs
// it on commit without compiling again.
func (e *Engine) apply(ctx context.Context, txn storage.Transaction, txnCtx *storage.Context, src *sources, data map[string]any) error {
	prevModules, prevPaths := e.status.local()
	for _, id := range prevModules {
		if err := e.store.DeletePolicy(ctx, txn, id); err != nil && !storage.IsNotFound(err) {
			return fmt.Errorf("removing policy %s: %w", id, err)
		}
	}
	for _, p := range prevPaths {
		if err := e.store.Write(ctx, txn, storage.RemoveOp, storage.MustParsePath("/"+p), nil); err != nil && !storage.IsNotFound(err) {
			return fmt.Errorf("removing data %s: %w", p, err)
		}
	}
	owned, err := e.libOwned(ctx, txn, src)
	if err != nil {
		return err
	}
	if !owned {
		maps.Copy(src.modules, src.lib)
	}
	for id, m := range src.modules {
		if err := e.store.UpsertPolicy(ctx, txn, id, m.Raw); err != nil {
			return fmt.Errorf("storing policy %s: %w", id, err)
		}
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	err = bundle.Activate(&bundle.ActivateOpts{
		Ctx: ctx, Store: e.store, Txn: txn, TxnCtx: txnCtx,
		Compiler: compiler, Metrics: metrics.New(), Bundles: src.bundles,
		ParserOptions: ast.ParserOptions{RegoVersion: ast.RegoV1},
	})
	if err != nil {
		return fmt.Errorf("compiling policy: %w", err)
	}
	if err := e.checkRoots(ctx, txn, data); err != nil {
		return err
	}
	for _, p := range writtenPaths(data) {
		if err := writePath(ctx, e.store, txn, p, lookupPath(data, p)); err != nil {
			return err
		}
	}
	plugins.SetCompilerOnContext(txnCtx, compiler)
	return nil
}

// dataDocument is the data regate writes itself: the plain sources' data,
// then Allow/Deny in object form, then Config.Data on top.
func (e *Engine) dataDocument(plain map[string]any) (map[string]any, error) {
	data := map[string]any{}
	if err := mergeInto(data, plain, ""); err != nil {
		return nil, err
	}
	regate, _ := data["regate"].(map[string]any)
	if regate == nil && (len(e.cfg.Allow) > 0 || len(e.cfg.Deny) > 0) {
		regate = map[string]any{}
		data["regate"] = regate
	}
	if len(e.cfg.Allow) > 0 {
		regate["allow"] = patternSet(e.cfg.Allow)
	}
	if len(e.cfg.Deny) > 0 {
		regate["deny"] = patternSet(e.cfg.Deny)
	}
	for k, v := range e.cfg.Data {
		cur, ok1 := data[k].(map[string]any)
		add, ok2 := v.(map[string]any)
		if ok1 && ok2 {
			maps.Copy(cur, add)
			continue
		}
		data[k] = v
	}
	return data, nil
}

func patternSet(patterns []string) map[string]any {
	out := make(map[string]any, len(patterns))
	for _, p := range patterns {
		out[p] = true
	}
	return out
}

// writtenPaths are the paths regate owns in the store: each top-level key,
// or each key under it when it is an object, so that data of a bundle that
// owns a sibling root (regate/org beside regate/allow) is never touched.
func writtenPaths(data map[string]any) []string {
	var out []string
	for k, v := range data {
		obj, ok := v.(map[string]any)
		if !ok {
			out = append(out, k)
			continue
		}
		for sk := range obj {
			out = append(out, k+"/"+sk)
		}
	}
	slices.Sort(out)
	return out
}

func lookupPath(data map[string]any, p string) any {
	var cur any = data
	for seg := range strings.SplitSeq(p, "/") {
		cur = cur.(map[string]any)[seg]
	}
	return cur
}

func writePath(ctx context.Context, store storage.Store, txn storage.Transaction, p string, v any) error {
	path := storage.MustParsePath("/" + p)
	if err := storage.MakeDir(ctx, store, txn, path[:len(path)-1]); err != nil {
		return fmt.Errorf("writing data %s: %w", p, err)
	}
	if err := store.Write(ctx, txn, storage.AddOp, path, v); err != nil {
		return fmt.Errorf("writing data %s: %w", p, err)
	}
	return nil
}

// checkRoots refuses data regate would write inside a bundle's roots: the
// bundle owns them, and its next activation would erase the write.
func (e *Engine) checkRoots(ctx context.Context, txn storage.Transaction, data map[string]any) error {
	names, err := bundle.ReadBundleNamesFromStore(ctx, e.store, txn)
	if err != nil && !storage.IsNotFound(err) {
		return fmt.Errorf("reading bundle roots: %w", err)
	}
	var errs []error
	for _, name := range names {
		roots, _ := bundle.ReadBundleRootsFromStore(ctx, e.store, txn, name)
		for _, root := range roots {
			for _, p := range writtenPaths(data) {
				if root == "" || p == root || strings.HasPrefix(p, root+"/") || strings.HasPrefix(root, p+"/") {
					errs = append(errs, fmt.Errorf("data %s overlaps root %q of bundle %s", p, root, name))
				}
			}
		}
	}
	return errors.Join(errs...)
}

// verification is the bundle verification of local bundles: on whenever OPA
// has keys configured.
func (e *Engine) verification() *bundle.VerificationConfig {
	keys := e.manager.PublicKeys()
	if len(keys) == 0 {
		return nil
	}
	id := e.cfg.VerificationKeyID
	if id == "" && len(keys) == 1 {
		for k := range keys {
			id = k
		}
	}
	return bundle.NewVerificationConfig(keys, id, "", nil)
}

// libOwned reports whether a bundle, local or remote, owns the root of the
// embedded pattern library; then the bundle's copy is the one that counts.
func (e *Engine) libOwned(ctx context.Context, txn storage.Transaction, src *sources) (bool, error) {
	covers := func(roots []string) bool {
		for _, r := range roots {
			if r == "" || r == libRoot || strings.HasPrefix(libRoot, r+"/") || strings.HasPrefix(r, libRoot+"/") {
				return true
			}
		}
		return false
	}
	for _, b := range src.bundles {
		if b.Manifest.Roots != nil && covers(*b.Manifest.Roots) {
			return true, nil
		}
	}
	names, err := bundle.ReadBundleNamesFromStore(ctx, e.store, txn)
	if err != nil && !storage.IsNotFound(err) {
		return false, fmt.Errorf("reading bundle roots: %w", err)
	}
	for _, name := range names {
		if _, local := src.bundles[name]; local {
			continue
		}
		roots, _ := bundle.ReadBundleRootsFromStore(ctx, e.store, txn, name)
		if covers(roots) {
			return true, nil
		}
	}
	return false, nil
}
