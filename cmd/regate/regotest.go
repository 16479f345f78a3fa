package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/runtime/info"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
	"github.com/spf13/cobra"

	"github.com/regate/regate/policies"
)

// Exit codes of `regate test`, as `opa test`: 1 when tests cannot run, 2
// when a test fails (or coverage is under the threshold).
const exitTestFailed = 2

type testParams struct {
	verbose, coverage, bundleMode, failOnEmpty, skipExitZero bool
	format, run                                              string
	threshold                                                float64
	timeout                                                  time.Duration
	ignore                                                   []string
	parallel                                                 int
}

func (a *app) testCommand() *cobra.Command {
	var p testParams
	cmd := &cobra.Command{
		Use:   "test [flags] [PATH...]",
		Short: "Run Rego unit tests with the embedded OPA (as opa test)",
		Long: `Test runs the Rego unit tests (rules named test_*) in PATH, files or
directories of Rego, JSON and YAML, or bundles with --bundle, exactly as
'opa test' does, with the same output formats and exit codes: 0 all passed,
1 the tests could not be loaded or compiled, 2 a test failed.

Without PATH it tests the embedded default policy.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.regoTest(cmd.Context(), args, p)
		},
	}
	fs := cmd.Flags()
	fs.BoolVarP(&p.verbose, "verbose", "v", false, "set verbose reporting mode")
	fs.StringVarP(&p.run, "run", "r", "", "run only test cases matching the regular expression")
	fs.BoolVar(&p.failOnEmpty, "fail-on-empty", false, "fail when no test was run")
	fs.StringVarP(&p.format, "format", "f", "pretty", "output format: pretty or json")
	fs.BoolVarP(&p.coverage, "coverage", "c", false, "report coverage (JSON)")
	fs.Float64Var(&p.threshold, "threshold", 0, "coverage threshold %: exit 2 below it")
	fs.DurationVarP(&p.timeout, "timeout", "t", 5*time.Second, "timeout of one test")
	fs.BoolVarP(&p.bundleMode, "bundle", "b", false, "load paths as bundle files or root directories")
	fs.StringSliceVar(&p.ignore, "ignore", nil, "set file and directory names to ignore during loading (e.g., '.*' excludes hidden files)")
	fs.BoolVarP(&p.skipExitZero, "exit-zero-on-skipped", "z", false, "skipped tests return status 0")
	fs.IntVarP(&p.parallel, "parallel", "p", runtime.NumCPU(), "number of tests run in parallel")
	usageCode(cmd, exitError)
	return cmd
}

func (a *app) regoTest(ctx context.Context, paths []string, p testParams) error {
	if p.format != "pretty" && p.format != "json" {
		return withCode(exitError, fmt.Errorf("--format %q: want pretty or json", p.format))
	}
	if p.threshold < 0 || p.threshold > 100 {
		return withCode(exitError, errors.New("code coverage threshold must be between 0 and 100"))
	}
	if p.threshold > 0 {
		p.coverage = true
	}
	modules, bundles, store, err := loadTests(paths, p)
	if err != nil {
		return withCode(exitError, err)
	}
	txn, err := store.NewTransaction(ctx, storage.WriteParams)
	if err != nil {
		return withCode(exitError, err)
	}
	defer store.Abort(ctx, txn)
	runner, reporter, err := testRunner(p, store, modules, bundles, a.stdout)
	if err != nil {
		return withCode(exitError, err)
	}
	ch, err := runner.RunTests(ctx, txn)
	if err != nil {
		return withCode(exitError, err)
	}
	return report(ch, reporter, p)
}

// loadTests loads PATHs as opa test does, or the embedded default policy
// (its *_test.rego included) when there is none.
func loadTests(paths []string, p testParams) (map[string]*ast.Module, map[string]*bundle.Bundle, storage.Store, error) {
	popts := ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}
	filter := func(abspath string, info os.FileInfo, depth int) bool {
		for _, s := range p.ignore {
			if loader.GlobExcludeName(s, 1)(abspath, info, depth) {
				return true
			}
		}
		return false
	}
	switch {
	case len(paths) == 0:
		return loadEmbedded(popts)
	case p.bundleMode:
		bundles, store, err := tester.LoadBundlesWithParserOptions(paths, filter, popts)
		if err != nil {
			return nil, nil, nil, err
		}
		modules := map[string]*ast.Module{}
		for name, b := range bundles {
			maps.Copy(modules, b.ParsedModules(name))
		}
		return modules, bundles, store, nil
	default:
		modules, store, err := tester.LoadWithParserOptions(paths, filter, popts)
		return modules, nil, store, err
	}
}

func loadEmbedded(popts ast.ParserOptions) (map[string]*ast.Module, map[string]*bundle.Bundle, storage.Store, error) {
	res, err := loader.NewFileLoader().WithFS(policies.FS).
		WithRegoVersion(popts.RegoVersion).WithProcessAnnotation(true).All([]string{"."})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("loading embedded default policy: %w", err)
	}
	store := inmem.NewFromObject(res.Documents)
	modules := make(map[string]*ast.Module, len(res.Modules))
	ctx := context.Background()
	err = storage.Txn(ctx, store, storage.WriteParams, func(txn storage.Transaction) error {
		for _, m := range res.Modules {
			modules[m.Name] = m.Parsed
			if err := store.UpsertPolicy(ctx, txn, m.Name, m.Raw); err != nil {
				return err
			}
		}
		return nil
	})
	return modules, nil, store, err
}

func testRunner(p testParams, store storage.Store, modules map[string]*ast.Module, bundles map[string]*bundle.Bundle, out io.Writer) (*tester.Runner, tester.Reporter, error) {
	compiler := ast.NewCompiler().
		WithEnablePrintStatements(true).
		WithCapabilities(ast.CapabilitiesForThisVersion()).
		WithUseTypeCheckAnnotations(true)
	rt, err := info.New()
	if err != nil {
		return nil, nil, err
	}
	var cov *cover.Cover
	runner := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		CapturePrintOutput(true).
		EnableTracing(p.verbose).
		StackTraces(true).
		SetRuntime(rt).
		SetModules(modules).
		SetBundles(bundles).
		SetTimeout(p.timeout).
		Filter(p.run).
		SetParallel(p.parallel)
	if p.coverage {
		cov = cover.New()
		runner = runner.SetCoverageQueryTracer(cov)
		return runner, tester.JSONCoverageReporter{Cover: cov, Modules: modules, Output: out, Threshold: p.threshold, Verbose: p.verbose}, nil
	}
	if p.format == "json" {
		return runner, tester.JSONReporter{Output: out}, nil
	}
	return runner, tester.PrettyReporter{Verbose: p.verbose, Output: out}, nil
}

// report feeds the results to the reporter and maps them to opa test's
// exit codes.
func report(ch chan *tester.Result, reporter tester.Reporter, p testParams) error {
	ran, failed := false, false
	dup := make(chan *tester.Result)
	go func() {
		defer close(dup)
		for tr := range ch {
			ran = true
			if !tr.Pass() && !(tr.Skip && p.skipExitZero) {
				failed = true
			}
			trace := tr.Trace
			tr.Trace = nil
			if p.verbose {
				tr.Trace = lineage.Filter(trace, func(ev *topdown.Event) bool {
					return ev.Op == topdown.NoteOp || ev.Op == topdown.FailOp
				})
			}
			dup <- tr
		}
	}()
	if err := reporter.Report(dup); err != nil {
		if _, ok := errors.AsType[*cover.CoverageThresholdError](err); ok {
			return withCode(exitTestFailed, err)
		}
		return withCode(exitError, err)
	}
	switch {
	case !ran && p.failOnEmpty:
		return withCode(exitError, errors.New("no tests were run"))
	case failed:
		return withCode(exitTestFailed, nil)
	}
	return nil
}
