package secrets

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzSwap: whatever the request, Swap never panics, a request it passes
// carries no placeholder in its request line or headers, a value never
// lands in a header with a control character or adds a path segment, and
// no refusal shows the value. "PH" in the inputs stands for the
// placeholder.
func FuzzSwap(f *testing.F) {
	for _, seed := range [][4]string{
		{"/t/PH", "a=PH", "Authorization", "Bearer PH"},
		{"/x", "", "Authorization", "Basic " + "eDpQSA=="},
		{"/PH/../x", "PH=1", "X-Token", "PH"},
		{"/%50H", "k=%50H&j=PH", "Authorization", "token PH"},
		{"/a", "k=PH;x", "Authorization", "Bearer PH, Bearer PH"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	specs, err := Merge(nil, []string{"t=T@a.test"})
	if err != nil {
		f.Fatal(err)
	}
	ss, err := Load(specs, func(string) string { return "tok_0123456789abcdefABCDEF" })
	if err != nil {
		f.Fatal(err)
	}
	set := NewSet(ss)
	ph, val := ss[0].Placeholder(), ss[0].Value()
	f.Fuzz(func(t *testing.T, path, query, name, value string) {
		sub := func(s string) string { return strings.ReplaceAll(s, "PH", ph) }
		name = http.CanonicalHeaderKey(name)
		r := &http.Request{Method: "GET", URL: &url.URL{Scheme: "https", Host: "a.test", Path: sub(path), RawQuery: sub(query)}, Header: http.Header{}, Host: "a.test"}
		if name != "" {
			r.Header[name] = []string{sub(value)}
		}
		segs := strings.Count(r.URL.Path, "/")
		err := set.Swap(r, "a.test", 443)
		if err != nil {
			if strings.Contains(err.Error(), val) {
				t.Fatalf("refusal shows the value: %v", err)
			}
			return
		}
		if left := set.Present(r); len(left) > 0 {
			t.Fatalf("passed with a placeholder left: %+v %v", r.URL, r.Header)
		}
		if strings.Count(r.URL.Path, "/") != segs {
			t.Fatalf("the swap changed the path's segments: %q", r.URL.Path)
		}
		for _, vs := range r.Header {
			for _, v := range vs {
				if strings.Contains(v, val) && strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("value in a header with a control character: %q", v)
				}
			}
		}
	})
}
