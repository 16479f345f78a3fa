package main

import (
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/regate/regate/internal/catrust"
	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/tlsca"
	"github.com/regate/regate/proxy"
)

// Validity of a CA regate generates: a run's lives as long as a run may;
// serve's until the next start (its certificate is written anew each time).
const (
	runCAValidity   = 24 * time.Hour
	serveCAValidity = 30 * 24 * time.Hour
)

// newInspection builds HTTPS inspection from the configuration: the CA
// (loaded, or generated in memory: its key is never written anywhere) and
// the roots upstream certificates are verified against (the system's and
// inspection.upstream_ca). nil when inspection is off.
func newInspection(cfg *config.Config, mode config.Mode, log *slog.Logger) (*proxy.Inspection, error) {
	in := cfg.Inspection
	if !in.Enabled {
		return nil, nil
	}
	var ca *tlsca.CA
	var err error
	switch {
	case in.CACert != "":
		ca, err = tlsca.Load(in.CACert, in.CAKey)
	case mode == config.ModeRun:
		ca, err = tlsca.New("regate run inspection CA", runCAValidity)
	default:
		ca, err = tlsca.New("regate serve inspection CA", serveCAValidity)
	}
	if err != nil {
		return nil, err
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		log.Warn("no system certificate roots; only inspection.upstream_ca is trusted for inspected upstreams", "error", err)
		roots = x509.NewCertPool()
	}
	if in.UpstreamCA != "" {
		pem, err := os.ReadFile(in.UpstreamCA)
		if err != nil {
			return nil, fmt.Errorf("inspection.upstream_ca: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("inspection.upstream_ca %s: no PEM certificate in it", in.UpstreamCA)
		}
	}
	return &proxy.Inspection{CA: ca, UpstreamRoots: roots}, nil
}

// trustInspection writes the bundles that make the child trust the
// inspection CA into a new private directory (removed by the caller when
// the command has exited) and returns the variables to set.
func trustInspection(insp *proxy.Inspection, env []string) (*catrust.Trust, string, error) {
	dir, err := os.MkdirTemp("", "regate-run-")
	if err != nil {
		return nil, "", fmt.Errorf("inspection: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // --isolate-user's command reads it too
		_ = os.RemoveAll(dir)
		return nil, "", err
	}
	trust, err := catrust.Prepare(dir, insp.CA.CertPEM(), env)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, "", fmt.Errorf("inspection: %w", err)
	}
	return trust, dir, nil
}

// serveDir is where serve writes what its clients read: the certificate
// of the CA it generated, the trust bundles of its attempts. It is the
// directory of the default admin socket, else the user's cache directory.
func serveDir() (string, error) {
	dir := ""
	if sock, ok := strings.CutPrefix(config.DefaultAdmin().Addr, "unix:"); ok {
		dir = filepath.Dir(sock)
	} else if cache, err := os.UserCacheDir(); err == nil {
		dir = filepath.Join(cache, "regate")
	} else {
		return "", fmt.Errorf("inspection: where to write the CA certificate: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("inspection: %w", err)
	}
	return dir, nil
}

// writeServeCA writes the certificate of the CA serve generated (its key
// never leaves memory) beside the admin socket, and says where.
func writeServeCA(insp *proxy.Inspection, log *slog.Logger) error {
	dir, err := serveDir()
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "inspect-ca.pem")
	if err := os.WriteFile(path+".tmp", insp.CA.CertPEM(), 0o644); err != nil {
		return fmt.Errorf("inspection: writing the CA certificate: %w", err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return fmt.Errorf("inspection: writing the CA certificate: %w", err)
	}
	log.Warn("HTTPS inspection CA generated for this start: clients must trust its certificate (give --inspect-ca and --inspect-key to keep one)",
		"certificate", path, "not_after", insp.CA.Certificate().NotAfter.Format(time.RFC3339))
	return nil
}

// serveTrust writes the bundles that make the children of serve's
// attempts trust its inspection CA (the system roots plus the CA, in
// serveDir()/trust) and returns the variables each attempt's env gets.
func serveTrust(insp *proxy.Inspection) ([]string, error) {
	dir, err := serveDir()
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "trust")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("inspection: %w", err)
	}
	trust, err := catrust.Prepare(dir, insp.CA.CertPEM(), nil)
	if err != nil {
		return nil, fmt.Errorf("inspection: %w", err)
	}
	return trust.Env, nil
}
