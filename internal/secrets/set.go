package secrets

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/regate/regate/engine"
)

// Set is the loaded secrets of a run, as the proxy uses them: which hosts
// are bound, which placeholders a request carries, the swap, the scrub of
// responses and the count of uses. A nil *Set has no secrets.
type Set struct {
	secrets []*Secret
	bound   map[string][]*Secret // host pattern → the secrets bound to it

	mu   sync.Mutex
	uses map[useKey]int
}

type useKey struct{ name, host string }

// NewSet indexes secrets by host pattern.
func NewSet(secrets []*Secret) *Set {
	s := &Set{secrets: secrets, bound: map[string][]*Secret{}, uses: map[useKey]int{}}
	for _, sec := range secrets {
		for _, h := range sec.Hosts {
			s.bound[strings.ToLower(h)] = append(s.bound[strings.ToLower(h)], sec)
		}
	}
	return s
}

// Secrets are the set's secrets, in configuration order.
func (s *Set) Secrets() []*Secret {
	if s == nil {
		return nil
	}
	return s.secrets
}

// For returns the secrets bound to host on port (host normalised, as
// input.host).
func (s *Set) For(host string, port int) []*Secret {
	if s == nil || len(s.secrets) == 0 {
		return nil
	}
	var out []*Secret
	for _, c := range engine.Candidates(host, port) {
		for _, sec := range s.bound[c] {
			if !slices.Contains(out, sec) {
				out = append(out, sec)
			}
		}
	}
	return out
}

// Bound reports whether a secret is bound to host on port: its tunnels
// are always inspected.
func (s *Set) Bound(host string, port int) bool { return len(s.For(host, port)) > 0 }

// Data is data.regate.secrets: each secret's host patterns by name, for
// the policy's check of input.secrets.
func (s *Set) Data() map[string]any {
	out := map[string]any{}
	for _, sec := range s.Secrets() {
		out[sec.Name] = slices.Clone(sec.Hosts)
	}
	return out
}

// Haystack is a request's request line and headers in every form a
// placeholder or a value can hide in, built once for all the sets that
// look at it (Present, RealPresent).
type Haystack struct{ text, lower string }

// NewHaystack builds r's Haystack.
func NewHaystack(r *http.Request) Haystack {
	text := strings.Join(haystack(r), "\n")
	return Haystack{text: text, lower: strings.ToLower(text)}
}

// Present returns the names of the secrets whose placeholder r carries in
// its request line or headers, in any letter case, percent-encoded, or
// inside HTTP Basic: input.secrets.
func (s *Set) Present(r *http.Request) []string {
	if s == nil || len(s.secrets) == 0 {
		return nil
	}
	return s.PresentIn(NewHaystack(r))
}

// PresentIn is Present of the request h was built from.
func (s *Set) PresentIn(h Haystack) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, sec := range s.secrets {
		if strings.Contains(h.lower, strings.ToLower(sec.placeholder)) {
			out = append(out, sec.Name)
		}
	}
	return out
}

// RealPresent returns the names of the secrets whose real value r carries
// in its request line or headers (as Present looks): a command that got
// hold of one (read from a file it should not have had) sends it.
func (s *Set) RealPresent(r *http.Request) []string {
	if s == nil || len(s.secrets) == 0 {
		return nil
	}
	return s.RealIn(NewHaystack(r))
}

// RealIn is RealPresent of the request h was built from.
func (s *Set) RealIn(h Haystack) []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, sec := range s.secrets {
		if strings.Contains(h.text, sec.value) {
			out = append(out, sec.Name)
		}
	}
	return out
}

// haystack is every form of r's request line and headers a placeholder
// can hide in.
func haystack(r *http.Request) []string {
	out := []string{r.Host, r.URL.Path, r.URL.RawPath, r.URL.RawQuery, r.URL.Opaque}
	if r.URL.User != nil {
		out = append(out, r.URL.User.String())
	}
	for _, s := range []string{r.URL.Path, r.URL.RawPath, r.URL.RawQuery} {
		out = append(out, unescapeAll(s))
	}
	for k, vs := range r.Header {
		out = append(out, k)
		for _, v := range vs {
			out = append(out, v, unescapeAll(v))
			if b := basicPayload(v); b != "" {
				out = append(out, b)
			}
		}
	}
	return out
}

// unescapeAll undoes percent-encoding (and + in queries) as long as it
// changes something: %2567 hides a % too.
func unescapeAll(s string) string {
	for range 4 {
		u, err := url.QueryUnescape(s)
		if err != nil || u == s {
			break
		}
		s = u
	}
	return s
}

// basicPayload is the decoded credentials of an HTTP Basic value, "" when
// v is not one.
func basicPayload(v string) string {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "basic") {
		return ""
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(cred))
	if err != nil {
		return ""
	}
	return string(b)
}

// ErrLeft is wrapped by Swap's refusal of a request that still carries a
// placeholder where none is replaced.
var ErrLeft = errors.New("a secret's placeholder is left where regate does not replace it")

// Swap puts the real value of each secret bound to host:port in place of
// its placeholder in r: the secret's header, Authorization (Bearer and
// other token schemes, and inside HTTP Basic), query parameter values and
// path segments. A placeholder of any secret still in the request line or
// headers afterwards refuses the request (ErrLeft), as does a value that
// would change the path's segments. Uses (requests that passed) are
// counted per host.
func (s *Set) Swap(r *http.Request, host string, port int) error {
	var used []string
	for _, sec := range s.For(host, port) {
		n, err := sec.swap(r)
		if err != nil {
			return fmt.Errorf("secret %s: %w", sec.Name, err)
		}
		if n > 0 {
			used = append(used, sec.Name)
		}
	}
	if left := s.Present(r); len(left) > 0 {
		return fmt.Errorf("%w: secret %s (the placeholder is replaced only in the Authorization header%s, query parameter values and path segments)",
			ErrLeft, strings.Join(left, ", "), s.headersNote())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, name := range used {
		s.uses[useKey{name, host}]++
	}
	return nil
}

func (s *Set) headersNote() string {
	var hs []string
	for _, sec := range s.secrets {
		if sec.Send == SendHeader && !slices.Contains(hs, sec.Header) {
			hs = append(hs, sec.Header)
		}
	}
	if len(hs) == 0 {
		return ""
	}
	return ", " + strings.Join(hs, ", ")
}

// swap replaces sec's placeholder in r; n is how many places.
func (sec *Secret) swap(r *http.Request) (n int, err error) {
	ph, val := sec.placeholder, sec.value
	for _, name := range sec.headers() {
		vs := r.Header.Values(name)
		for i, v := range vs {
			nv, k := sec.swapHeader(name, v)
			if k == 0 {
				continue
			}
			if strings.ContainsAny(nv, "\r\n\x00") {
				return 0, errors.New("the replaced header would hold a control character")
			}
			vs[i], n = nv, n+k
		}
	}
	if strings.Contains(r.URL.Path, ph) {
		segs := strings.Split(r.URL.Path, "/")
		for i, seg := range segs {
			if !strings.Contains(seg, ph) {
				continue
			}
			seg = strings.ReplaceAll(seg, ph, val)
			if strings.ContainsAny(seg, "/\\\x00") || seg == "." || seg == ".." {
				return 0, errors.New("the value would change the path's segments")
			}
			segs[i], n = seg, n+1
		}
		r.URL.Path, r.URL.RawPath = strings.Join(segs, "/"), ""
	}
	if q, k := swapQuery(r.URL.RawQuery, ph, val); k > 0 {
		r.URL.RawQuery, n = q, n+k
	}
	return n, nil
}

// headers are the headers sec's placeholder is replaced in.
func (sec *Secret) headers() []string {
	if sec.Send == SendHeader {
		return []string{"Authorization", http.CanonicalHeaderKey(sec.Header)}
	}
	return []string{"Authorization"}
}

// swapHeader replaces the placeholder in one header value: inside HTTP
// Basic (decoded, replaced, encoded again), or as the credential of
// another Authorization scheme (Bearer, token), or as the whole value (or
// a scheme's credential) of the secret's own header.
func (sec *Secret) swapHeader(name, v string) (string, int) {
	ph := sec.placeholder
	if b := basicPayload(v); b != "" && name == "Authorization" {
		if !strings.Contains(b, ph) {
			return v, 0
		}
		scheme, _, _ := strings.Cut(strings.TrimSpace(v), " ")
		return scheme + " " + base64.StdEncoding.EncodeToString([]byte(strings.ReplaceAll(b, ph, sec.value))), 1
	}
	if v == ph && name != "Authorization" {
		return sec.value, 1
	}
	scheme, cred, ok := strings.Cut(v, " ")
	if ok && cred == ph && scheme != "" && !strings.ContainsAny(scheme, " \t") {
		return scheme + " " + sec.value, 1
	}
	return v, 0
}

// swapQuery replaces the placeholder in the values of a raw query,
// decoding and encoding again only the parameters that hold it.
func swapQuery(raw, ph, val string) (string, int) {
	if raw == "" {
		return raw, 0
	}
	parts := strings.Split(raw, "&")
	n := 0
	for i, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		dv, err := url.QueryUnescape(v)
		if err != nil || !strings.Contains(dv, ph) {
			continue
		}
		parts[i], n = k+"="+url.QueryEscape(strings.ReplaceAll(dv, ph, val)), n+1
	}
	return strings.Join(parts, "&"), n
}

// Scrub puts the placeholder back wherever a header echoes a real value
// (responses), and reports whether it changed anything.
func (s *Set) Scrub(h http.Header) bool {
	if s == nil {
		return false
	}
	changed := false
	for k, vs := range h {
		for i, v := range vs {
			if nv := s.ScrubString(v); nv != v {
				vs[i], changed = nv, true
			}
		}
		h[k] = vs
	}
	return changed
}

// ScrubString replaces every real value in text (an error message, a
// header) by its placeholder, also percent-encoded or inside base64 (an
// echoed HTTP Basic header).
func (s *Set) ScrubString(text string) string {
	if s == nil {
		return text
	}
	for _, sec := range s.secrets {
		for _, f := range sec.forms {
			if strings.Contains(text, f.value) {
				text = strings.ReplaceAll(text, f.value, f.placeholder)
			}
		}
	}
	return text
}

// Use is how many requests to one host carried one secret.
type Use struct {
	Name, Host string
	Count      int
}

// Uses are the counts of the swaps so far, by secret then host.
func (s *Set) Uses() []Use {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Use, 0, len(s.uses))
	for k, n := range s.uses {
		out = append(out, Use{Name: k.name, Host: k.host, Count: n})
	}
	slices.SortFunc(out, func(a, b Use) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.Host, b.Host)
	})
	return out
}

// BoundTo reports whether the secret named name is bound to host on port.
func (s *Set) BoundTo(name, host string, port int) bool {
	return slices.ContainsFunc(s.For(host, port), func(sec *Secret) bool { return sec.Name == name })
}
