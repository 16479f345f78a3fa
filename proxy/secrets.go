package proxy

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/secrets"
)

// Rules of the proxy's own denies of secrets: a placeholder to a bound
// host that cannot be swapped safely (over plain HTTP, or left where
// nothing replaces it), and a real value sent to a host it is not for.
const (
	ruleSecretCleartext = "secrets:cleartext"
	ruleSecretLeft      = "secrets:left"
	ruleSecretReal      = "secrets:real-value"
)

// secretsInput sets input.secrets: the secrets whose placeholder, or real
// value, r carries. A real value the command somehow holds is shown to
// the policy, and so to the decision log, as the placeholder; the names
// of those secrets are returned.
func (p *Proxy) secretsInput(f *flow, r *http.Request) []string {
	if p.cfg.Secrets == nil {
		return nil
	}
	hay := secrets.NewHaystack(r) // once, for both sets
	f.in.Secrets = p.secretsOf(f).PresentIn(hay)
	leaked := p.cfg.Secrets.All().RealIn(hay)
	if len(leaked) == 0 {
		return nil
	}
	scrub := p.scrubberOf(f)
	if scrub == nil {
		scrub = p.cfg.Secrets.All()
	}
	f.in.Path = scrub.ScrubString(f.in.Path)
	for k, v := range f.in.Headers {
		f.in.Headers[k] = scrub.ScrubString(v)
	}
	for _, n := range leaked {
		if !slices.Contains(f.in.Secrets, n) {
			f.in.Secrets = append(f.in.Secrets, n)
		}
	}
	slices.Sort(f.in.Secrets)
	return leaked
}

// swapSecrets puts the real values into an allowed request to a host
// secrets are bound to; a real value (leaked: the names) sent anywhere else
// is the proxy's own deny (README, "Keeping secrets out of the sandbox"). It
// runs after the decision, so the policy and the decision log see only
// placeholders. A placeholder on plain HTTP to a bound host, or left
// where nothing replaces it, is the proxy's own deny (false). Requests to
// other hosts are not touched: their placeholders are the policy's to
// judge (input.secrets).
func (p *Proxy) swapSecrets(f *flow, r *http.Request, leaked []string) bool {
	if off := p.offHost(f, leaked); len(off) > 0 { // whatever the policy said: that is exfiltration
		f.ownDeny(ruleSecretReal, fmt.Sprintf("the request carries the real value of secret %s, which is not for %s", strings.Join(off, ", "), f.in.Host))
		return false
	}
	set := p.secretsOf(f)
	if !set.Bound(f.in.Host, f.in.Port) {
		return true
	}
	if f.in.Scheme != engine.SchemeHTTPS || f.in.TLS == nil || !f.in.TLS.Inspected {
		if len(f.in.Secrets) == 0 {
			return true
		}
		f.ownDeny(ruleSecretCleartext, fmt.Sprintf("the request carries the placeholder of secret %s over plain HTTP: regate sends secrets only over HTTPS",
			strings.Join(f.in.Secrets, ", ")))
		return false
	}
	if err := set.Swap(r, f.in.Host, f.in.Port); err != nil {
		f.ownDeny(ruleSecretLeft, set.ScrubString(err.Error()))
		return false
	}
	if len(f.in.Secrets) > 0 {
		// An uncompressed answer, so that a value it echoes is scrubbed
		// (roundTrip).
		r.Header.Del("Accept-Encoding")
	}
	for _, name := range f.in.Secrets {
		p.m.secretSwaps.WithLabelValues(name).Inc()
	}
	return true
}

// secretsOf is the set of f's attempt: the placeholders it holds (nil:
// none, and its requests are never swapped).
func (p *Proxy) secretsOf(f *flow) *secrets.Set { return p.cfg.Secrets.For(f.in.AttemptID) }

// scrubberOf is the set that puts placeholders back in f's answer: f's
// own when a secret of it is bound to f's host, else every secret's when
// one is bound there (a flow without a grant gets placeholders it cannot
// use), else nil: nothing to scrub.
func (p *Proxy) scrubberOf(f *flow) *secrets.Set {
	if set := p.secretsOf(f); set.Bound(f.in.Host, f.in.Port) {
		return set
	}
	if all := p.cfg.Secrets.All(); all.Bound(f.in.Host, f.in.Port) {
		return all
	}
	return nil
}

// offHost are the leaked secrets (real values the request carries) not
// bound to f's host.
func (p *Proxy) offHost(f *flow, leaked []string) []string {
	var out []string
	for _, n := range leaked {
		if !p.cfg.Secrets.All().BoundTo(n, f.in.Host, f.in.Port) {
			out = append(out, n)
		}
	}
	return out
}

// readableForScrub makes the body of an answer from a host a secret is
// bound to readable by the scrub: a gzip, deflate or zstd body is decoded
// on the way (the client gets it as identity: Content-Encoding and
// Content-Length go). An encoding regate cannot decode is an error when
// the request carried a secret (it was sent without Accept-Encoding, so
// the server chose one anyway: fail closed), else passed as it is.
func readableForScrub(resp *http.Response, carried bool) error {
	enc := strings.ToLower(strings.TrimSpace(resp.Header.Get("Content-Encoding")))
	var open func(io.Reader) (io.ReadCloser, error)
	switch enc {
	case "", "identity":
		return nil
	case "gzip", "x-gzip":
		open = func(r io.Reader) (io.ReadCloser, error) { return gzip.NewReader(r) }
	case "deflate":
		open = openDeflate
	case "zstd":
		open = func(r io.Reader) (io.ReadCloser, error) {
			d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			return d.IOReadCloser(), nil
		}
	default:
		if carried {
			return fmt.Errorf("the answer of a request that carried a secret is %q-encoded, which regate cannot decode to scrub", enc)
		}
		return nil
	}
	resp.Body = &decodedBody{raw: resp.Body, open: open}
	resp.Header.Del("Content-Encoding")
	resp.Header.Del("Content-Length")
	resp.ContentLength = -1
	resp.Uncompressed = true
	return nil
}

// openDeflate reads HTTP's deflate: zlib-wrapped as the RFC says, or raw
// as some servers send it.
func openDeflate(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(2)
	if err == nil && (uint16(head[0])<<8|uint16(head[1]))%31 == 0 && head[0]&0x0f == 8 {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

// decodedBody decodes a body as it is read; the decoder is opened at the
// first read, so that the answer's head is not held for its first bytes.
type decodedBody struct {
	raw  io.ReadCloser
	open func(io.Reader) (io.ReadCloser, error)
	dec  io.ReadCloser
	err  error
}

func (b *decodedBody) Read(p []byte) (int, error) {
	if b.dec == nil && b.err == nil {
		if b.dec, b.err = b.open(b.raw); b.err != nil {
			b.err = fmt.Errorf("decoding the answer to scrub it: %w", b.err)
		}
	}
	if b.err != nil {
		return 0, b.err
	}
	return b.dec.Read(p)
}

func (b *decodedBody) Close() error {
	if b.dec != nil {
		_ = b.dec.Close()
	}
	return b.raw.Close()
}

// scrubbedError is an upstream error whose text had a real value in it.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

// scrubError keeps real values out of the texts of upstream errors, which
// reach the client's answer, the outcome and the logs.
func (p *Proxy) scrubError(err error) error {
	if msg := p.cfg.Secrets.All().ScrubString(err.Error()); msg != err.Error() {
		return &scrubbedError{msg: msg, err: err}
	}
	return err
}
