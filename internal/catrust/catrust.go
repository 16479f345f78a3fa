// Package catrust makes a child process trust one more CA (HTTPS
// inspection's): bundle files in a directory of the run's, and the
// variables common clients read pointing at them. A variable the user set
// already keeps what it trusted: its file is combined with the CA, not
// replaced.
package catrust

import (
	"bytes"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// BundleVars are the variables that name a PEM bundle of every root the
// client trusts: they get the system's roots (or the user's file) plus
// the CA.
var BundleVars = []string{
	"SSL_CERT_FILE", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "GIT_SSL_CAINFO", "PIP_CERT",
	"AWS_CA_BUNDLE", "CARGO_HTTP_CAINFO", "npm_config_cafile", "DENO_CERT",
}

// ExtraVars name certificates trusted besides the system's: they get the
// CA alone (or the user's file plus the CA).
var ExtraVars = []string{"NODE_EXTRA_CA_CERTS"}

// SystemBundles are where distributions keep the system's roots, in the
// order Go's crypto/x509 looks for them.
var SystemBundles = []string{
	"/etc/ssl/certs/ca-certificates.crt",
	"/etc/pki/tls/certs/ca-bundle.crt",
	"/etc/ssl/ca-bundle.pem",
	"/etc/pki/tls/cacert.pem",
	"/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
	"/etc/ssl/cert.pem",
}

// Trust is what Prepare made.
type Trust struct {
	// Env are the variables to set in the child (NAME=VALUE).
	Env []string
	// Bundle is the PEM file of the system's roots plus the CA: what
	// --isolate binds over the system's bundle inside.
	Bundle string
	// System is the system bundle Bundle was made from ("" if none).
	System string
}

// Prepare writes the bundles into dir (which the caller removes) for the
// PEM certificate ca, given the child's environment env, and returns the
// variables to set.
func Prepare(dir string, ca []byte, env []string) (*Trust, error) {
	if blk, _ := pem.Decode(ca); blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("trusting the CA: not a PEM certificate")
	}
	t := &Trust{}
	system := systemRoots(env)
	t.System = system
	var roots []byte
	if system != "" {
		var err error
		if roots, err = os.ReadFile(system); err != nil {
			return nil, fmt.Errorf("reading the system's roots: %w", err)
		}
	}
	bundle, err := write(dir, "bundle.pem", roots, ca)
	if err != nil {
		return nil, err
	}
	t.Bundle = bundle
	caOnly, err := write(dir, "ca.pem", nil, ca)
	if err != nil {
		return nil, err
	}
	get := lookup(env)
	for i, vars := range [][]string{BundleVars, ExtraVars} {
		def := bundle
		if i == 1 {
			def = caOnly
		}
		for _, v := range vars {
			val := def
			if user := get(v); user != "" {
				if mine, err := os.ReadFile(user); err == nil {
					if val, err = write(dir, v+".pem", mine, ca); err != nil {
						return nil, err
					}
				}
			}
			t.Env = append(t.Env, v+"="+val)
		}
	}
	jvm, err := javaTrust(dir, roots, ca)
	if err != nil {
		return nil, err
	}
	t.Env = append(t.Env, jvm)
	return t, nil
}

// systemRoots is the system bundle: the one regate's child would use
// (SSL_CERT_FILE of env when it names a file), else the first that exists.
func systemRoots(env []string) string {
	if f := lookup(env)("SSL_CERT_FILE"); f != "" {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	for _, f := range SystemBundles {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return ""
}

func lookup(env []string) func(string) string {
	return func(name string) string {
		for i := len(env) - 1; i >= 0; i-- {
			if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
				return v
			}
		}
		return ""
	}
}

// write writes first then ca (each ending in a newline) to dir/name, mode
// 0644: every client, whoever it runs as, reads it.
func write(dir, name string, first, ca []byte) (string, error) {
	var b bytes.Buffer
	b.Write(first)
	if len(first) > 0 && !bytes.HasSuffix(first, []byte("\n")) {
		b.WriteByte('\n')
	}
	b.Write(ca)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return "", fmt.Errorf("writing %s: %w", name, err)
	}
	if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
		return "", err
	}
	return path, nil
}

// javaTrust writes a PKCS#12 trust store of roots plus ca and returns the
// JAVA_TOOL_OPTIONS that name it (appended to the user's by
// childenv.Merge).
func javaTrust(dir string, roots, ca []byte) (string, error) {
	var certs []*x509.Certificate
	for rest := append(append([]byte{}, roots...), ca...); ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			certs = append(certs, c)
		}
	}
	pass := make([]byte, 8)
	if _, err := rand.Read(pass); err != nil {
		return "", err
	}
	password := hex.EncodeToString(pass) // not a secret: the store holds public certificates
	data, err := pkcs12.Modern.EncodeTrustStore(certs, password)
	if err != nil {
		return "", fmt.Errorf("encoding the Java trust store: %w", err)
	}
	path := filepath.Join(dir, "truststore.p12")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return "", fmt.Errorf("writing the Java trust store: %w", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		return "", err
	}
	return fmt.Sprintf("JAVA_TOOL_OPTIONS=-Djavax.net.ssl.trustStore=%s -Djavax.net.ssl.trustStoreType=PKCS12 -Djavax.net.ssl.trustStorePassword=%s", path, password), nil
}
