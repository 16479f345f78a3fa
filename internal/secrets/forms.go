package secrets

import (
	"encoding/base64"
	"net/url"
	"slices"
)

// form is one way a value can be written (raw, percent-encoded, inside
// base64 at each of the three alignments, standard and URL alphabets) and
// the same form of its placeholder. Each pair has equal lengths: a
// placeholder keeps its value's length and every non-alphanumeric
// character, so a scrub keeps lengths too.
type form struct {
	value, placeholder string
	bytes              []byte // value, for the body scrub
}

// forms lists the forms of sec's value a scrub replaces. Inside base64
// only the characters that depend on the value alone are replaced; the
// one character at each end that mixes in a neighbour's bits is left.
func (sec *Secret) computeForms() {
	add := func(v, p string) {
		if v != "" && len(v) == len(p) && v != p && !slices.ContainsFunc(sec.forms, func(f form) bool { return f.value == v }) {
			sec.forms = append(sec.forms, form{v, p, []byte(v)})
		}
	}
	add(sec.value, sec.placeholder)
	add(url.QueryEscape(sec.value), url.QueryEscape(sec.placeholder))
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		for k := range 3 {
			v, p := base64Middle(enc, sec.value, k), base64Middle(enc, sec.placeholder, k)
			add(v, p)
		}
	}
}

// base64Middle is the part of the base64 of s, preceded by k other bytes,
// that depends on s alone.
func base64Middle(enc *base64.Encoding, s string, k int) string {
	b := append(make([]byte, k), s...)
	e := enc.EncodeToString(b)
	start := (8*k + 5) / 6
	end := 8 * (k + len(s)) / 6
	if end-start < minRandom {
		return ""
	}
	return e[start:end]
}
