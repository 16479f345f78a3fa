package engine

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/loader"
)

// defaultModulePrefix names the embedded default's modules in the store.
const defaultModulePrefix = "regate-default/"

// libDir and libRoot are where the default's pattern library lives, in the
// embedded files and in data.
const (
	libDir  = "lib"
	libRoot = "regate/lib"
)

// sources is everything the local policy sources hold, parsed: plain Rego
// modules and data (the embedded default, files, directories), and bundles.
type sources struct {
	modules map[string]*loader.RegoFile // by store id
	// lib is the embedded pattern library (packages regate.lib.*), loaded
	// beside any policy unless a bundle owns the root regate/lib.
	lib     map[string]*loader.RegoFile
	data    map[string]any
	bundles map[string]*bundle.Bundle // by name (the path)
}

// isBundle reports whether path is a bundle: a .tar.gz or a directory with a
// .manifest (following symlinks).
func isBundle(path string) bool {
	if strings.HasSuffix(path, ".tar.gz") || strings.HasSuffix(path, ".tgz") {
		return true
	}
	_, err := os.Stat(filepath.Join(path, ".manifest"))
	return err == nil
}

// skipTests keeps *_test.rego out of what decides (tests are for `regate
// test` and `opa test`), and hidden files and directories below the root:
// a Kubernetes ConfigMap mount holds every file twice, once through its
// `..data` symlink and once in the hidden `..2024_…` directory behind it.
func skipTests(_ string, info fs.FileInfo, depth int) bool {
	if depth > 0 && strings.HasPrefix(info.Name(), ".") {
		return true
	}
	return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
}

// loadSources parses every local source. It touches nothing shared, so it
// runs off the hot path; any error refuses the whole reload.
func (e *Engine) loadSources(vc *bundle.VerificationConfig) (*sources, error) {
	src := &sources{modules: map[string]*loader.RegoFile{}, lib: map[string]*loader.RegoFile{}, data: map[string]any{}, bundles: map[string]*bundle.Bundle{}}
	if e.cfg.Default != nil && (len(e.cfg.Policies) > 0 || e.remote) {
		res, err := loader.NewFileLoader().WithFS(e.cfg.Default).WithRegoVersion(ast.RegoV1).Filtered([]string{libDir}, skipTests)
		if err == nil {
			for name, m := range res.Modules {
				src.lib[defaultModulePrefix+name] = m
			}
		}
	}
	if len(e.cfg.Policies) == 0 && e.cfg.Default != nil && !e.remote {
		res, err := loader.NewFileLoader().WithFS(e.cfg.Default).WithRegoVersion(ast.RegoV1).Filtered([]string{"."}, skipTests)
		if err != nil {
			return nil, fmt.Errorf("loading embedded default policy: %w", err)
		}
		if err := src.addPlain(res, defaultModulePrefix); err != nil {
			return nil, err
		}
	}
	var plain []string
	for _, p := range e.cfg.Policies {
		if !isBundle(p) {
			plain = append(plain, p)
			continue
		}
		b, err := loader.NewFileLoader().
			WithFollowSymlinks(true).
			WithRegoVersion(ast.RegoV1).
			WithBundleVerificationConfig(vc).
			WithSkipBundleVerification(vc == nil).
			AsBundle(p)
		if err != nil {
			return nil, fmt.Errorf("loading bundle %s: %w", p, err)
		}
		src.bundles[filepath.Clean(p)] = b
	}
	if len(plain) > 0 {
		res, err := loader.NewFileLoader().WithFollowSymlinks(true).WithRegoVersion(ast.RegoV1).Filtered(plain, skipTests)
		if err != nil {
			return nil, fmt.Errorf("loading policy: %w", err)
		}
		if err := src.addPlain(res, ""); err != nil {
			return nil, err
		}
	}
	return src, nil
}

func (s *sources) addPlain(res *loader.Result, prefix string) error {
	for name, m := range res.Modules {
		s.modules[prefix+name] = m
	}
	return mergeInto(s.data, res.Documents, "")
}

// mergeInto merges src into dst, refusing a key given twice with different
// leaf values.
func mergeInto(dst, src map[string]any, at string) error {
	for k, v := range src {
		path := strings.TrimPrefix(at+"/"+k, "/")
		cur, ok := dst[k]
		if !ok {
			dst[k] = v
			continue
		}
		cm, ok1 := cur.(map[string]any)
		vm, ok2 := v.(map[string]any)
		if !ok1 || !ok2 {
			return fmt.Errorf("data path %s is defined twice", path)
		}
		if err := mergeInto(cm, vm, path); err != nil {
			return err
		}
	}
	return nil
}
