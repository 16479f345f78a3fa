package secrets

import (
	"bytes"
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/iotest"
)

const realToken = "ghp_abcdefghijklmnopqrstuvwxyzABCDEF0123" // 40 chars, like a GitHub token

func TestPlaceholderShape(t *testing.T) {
	for _, tc := range []struct{ name, value, prefix string }{
		{"github", realToken, "ghp_"},
		{"fine-grained", "github_pat_11ABCDEFG0abcdefghijklmnopqrstuvwxyz", "github_pat_"},
		{"openai", "sk-proj-AbCdEf0123456789AbCdEf0123456789", "sk-proj-"},
		{"hex", "0123456789abcdef0123456789abcdef", ""},
		{"npm", "npm_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij", "npm_"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Placeholder(tc.value)
			if err != nil {
				t.Fatal(err)
			}
			if p == tc.value || len(p) != len(tc.value) || !strings.HasPrefix(p, tc.prefix) {
				t.Fatalf("placeholder %q for %q: want a different value of the same length with prefix %q", p, tc.value, tc.prefix)
			}
			for i := range p {
				if class(p[i]) != class(tc.value[i]) && !(tc.name == "hex") {
					t.Fatalf("placeholder %q: character %d is of another class than %q's", p, i, tc.value)
				}
			}
			if tc.name == "hex" && !regexp.MustCompile(`^[0-9a-f]+$`).MatchString(p) {
				t.Fatalf("placeholder %q of a hex value is not hex", p)
			}
			if q, _ := Placeholder(tc.value); q == p {
				t.Fatal("two placeholders of one value are equal: not random")
			}
		})
	}
	if _, err := Placeholder("ghp_short"); err == nil {
		t.Fatal("a value with fewer than 12 random characters got a placeholder")
	}
}

func class(c byte) int {
	switch {
	case c >= 'a' && c <= 'z':
		return 1
	case c >= 'A' && c <= 'Z':
		return 2
	case c >= '0' && c <= '9':
		return 3
	}
	return int(c)
}

func TestMerge(t *testing.T) {
	specs, err := Merge([]Spec{{Name: "anthropic", Hosts: []string{"api.anthropic.test"}}}, []string{"github", "mine=MY_KEY@api.mine.test,*.mine.test", "anthropic"})
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) != 3 || specs[0].Name != "anthropic" || specs[0].Header != "x-api-key" || specs[0].Hosts[0] != "api.anthropic.test" {
		t.Fatalf("specs %+v", specs)
	}
	if specs[1].Name != "github" || specs[1].Vars[0] != "GH_TOKEN" || specs[2].Env != "MY_KEY" || len(specs[2].Hosts) != 2 {
		t.Fatalf("specs %+v", specs)
	}
	for _, bad := range [][]string{{"nosuch"}, {"x=@h.test"}, {"x=V@*"}, {"x=V@"}, {"X=V@h.test"}} {
		if _, err := Merge(nil, bad); err == nil {
			t.Errorf("--secret %q accepted", bad)
		}
	}
	if _, err := Merge([]Spec{{Name: "k", Env: "K", Send: "header", Header: "bad header", Hosts: []string{"a.test"}}}, nil); err == nil {
		t.Error("a bad header name accepted")
	}
}

func TestLoadFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "token")
	if err := os.WriteFile(path, []byte(realToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ss, err := Load([]Spec{{Name: "f", File: path, Send: SendBearer, Hosts: []string{"a.test"}, Vars: []string{"T"}}}, os.Getenv)
	if err != nil || ss[0].Value() != realToken {
		t.Fatalf("load: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load([]Spec{{Name: "f", File: path, Send: SendBearer, Hosts: []string{"a.test"}}}, os.Getenv); err == nil || strings.Contains(err.Error(), realToken) {
		t.Fatalf("a file readable by others was accepted, or the error shows the value: %v", err)
	}
	_, err = Load([]Spec{{Name: "e", Env: "E", Send: SendBearer, Hosts: []string{"a.test"}}}, func(string) string { return "ghp_has space in it0123456789" })
	if err == nil || strings.Contains(err.Error(), "has space") {
		t.Fatalf("a value with a space was accepted, or the error shows it: %v", err)
	}
}

func testSet(t testing.TB) (*Set, *Secret, *Secret) {
	t.Helper()
	env := map[string]string{"GH_TOKEN": realToken, "ANTHROPIC_API_KEY": "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123"}
	specs, err := Merge(nil, []string{"github=GH_TOKEN@api.github.test,**.github.test", "anthropic=ANTHROPIC_API_KEY@api.anthropic.test"})
	if err != nil {
		t.Fatal(err)
	}
	ss, err := Load(specs, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return NewSet(ss), ss[0], ss[1]
}

func request(t *testing.T, target string, header ...string) *http.Request {
	t.Helper()
	r, err := http.NewRequest("GET", target, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Add(header[i], header[i+1])
	}
	return r
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

func TestSwap(t *testing.T) {
	set, gh, an := testSet(t)
	ph := gh.Placeholder()
	for _, tc := range []struct {
		name   string
		r      *http.Request
		header string // the header that must hold want
		want   string
		path   string
		query  string
	}{
		{name: "bearer", r: request(t, "https://api.github.test/user", "Authorization", "Bearer "+ph), header: "Authorization", want: "Bearer " + realToken},
		{name: "token scheme", r: request(t, "https://api.github.test/user", "Authorization", "token "+ph), header: "Authorization", want: "token " + realToken},
		{name: "basic password", r: request(t, "https://github.test/o/r.git/info/refs", "Authorization", basic("x-access-token", ph)), header: "Authorization", want: basic("x-access-token", realToken)},
		{name: "basic user", r: request(t, "https://github.test/o/r.git/info/refs", "Authorization", basic(ph, "")), header: "Authorization", want: basic(realToken, "")},
		{name: "query", r: request(t, "https://api.github.test/x?a=1&access_token="+ph), query: "a=1&access_token=" + realToken},
		{name: "path segment", r: request(t, "https://api.github.test/t/"+ph+"/x"), path: "/t/" + realToken + "/x"},
		{name: "part of a segment", r: request(t, "https://api.github.test/t/bot"+ph+".json"), path: "/t/bot" + realToken + ".json"},
		{name: "own header", r: request(t, "https://api.anthropic.test/v1", "X-Api-Key", an.Placeholder()), header: "X-Api-Key", want: an.Value()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.r.URL
			host := u.Hostname()
			if got := set.Present(tc.r); len(got) != 1 {
				t.Fatalf("present %v", got)
			}
			if err := set.Swap(tc.r, host, 443); err != nil {
				t.Fatal(err)
			}
			if tc.header != "" && tc.r.Header.Get(tc.header) != tc.want {
				t.Fatalf("%s: %q, want %q", tc.header, tc.r.Header.Get(tc.header), tc.want)
			}
			if tc.path != "" && u.Path != tc.path {
				t.Fatalf("path %q", u.Path)
			}
			if tc.query != "" && u.RawQuery != tc.query {
				t.Fatalf("query %q", u.RawQuery)
			}
			if len(set.Present(tc.r)) != 0 {
				t.Fatal("a placeholder is left")
			}
		})
	}
	if uses := set.Uses(); len(uses) != 3 || uses[1] != (Use{"github", "api.github.test", 5}) {
		t.Fatalf("uses %+v", uses)
	}
}

// TestSwapRefuses: placeholders where nothing replaces them, on a bound
// host, refuse the request; on another host nothing is replaced.
func TestSwapRefuses(t *testing.T) {
	set, gh, an := testSet(t)
	ph := gh.Placeholder()
	for name, r := range map[string]*http.Request{
		"other header":              request(t, "https://api.github.test/", "X-Token", ph),
		"second authorization":      request(t, "https://api.github.test/", "Authorization", "Bearer "+ph, "Authorization", "Bearer x "+ph),
		"header name":               request(t, "https://api.github.test/", "X-"+ph, "1"),
		"other secret's":            request(t, "https://api.github.test/", "Authorization", "Bearer "+an.Placeholder()),
		"lower case":                request(t, "https://api.github.test/", "Authorization", "Bearer "+strings.ToLower(ph)),
		"upper case":                request(t, "https://api.github.test/?q="+strings.ToUpper(ph)),
		"query key":                 request(t, "https://api.github.test/?"+ph+"=1"),
		"percent-encoded in header": request(t, "https://api.github.test/", "X-A", url.PathEscape("%"+ph)),
		"double-encoded in path":    request(t, "https://api.github.test/t/%2567"+ph[1:]),
	} {
		t.Run(name, func(t *testing.T) {
			if len(set.Present(r)) == 0 {
				t.Fatal("placeholder not seen")
			}
			err := set.Swap(r, "api.github.test", 443)
			if err == nil {
				t.Fatal("swapped and passed")
			}
			if strings.Contains(err.Error(), realToken) {
				t.Fatal("the refusal shows the value")
			}
		})
	}
	if got := set.RealPresent(request(t, "https://elsewhere.test/?t=x"+realToken)); len(got) != 1 || got[0] != "github" {
		t.Fatalf("real value not seen: %v", got)
	}
	if got := set.RealPresent(request(t, "https://elsewhere.test/", "Authorization", "Bearer "+ph)); len(got) != 0 {
		t.Fatalf("a placeholder seen as the real value: %v", got)
	}
	r := request(t, "https://elsewhere.test/", "Authorization", "Bearer "+ph)
	if got := set.Present(r); len(got) != 1 || got[0] != "github" {
		t.Fatalf("present %v", got)
	}
	if set.Bound("elsewhere.test", 443) {
		t.Fatal("elsewhere.test bound")
	}
	if !set.Bound("deep.api.github.test", 443) || !set.Bound("github.test", 443) {
		t.Fatal("**.github.test not bound")
	}
}

func TestSwapPathTraversal(t *testing.T) {
	specs, _ := Merge(nil, []string{"p=P@a.test"})
	ss, err := Load(specs, func(string) string { return "abc/../../def0123456789xyz" })
	if err != nil {
		t.Fatal(err)
	}
	set := NewSet(ss)
	r := request(t, "https://a.test/x/"+ss[0].Placeholder())
	if err := set.Swap(r, "a.test", 443); err == nil {
		t.Fatalf("a value with / swapped into the path: %q", r.URL.Path)
	}
}

func TestScrubAndChildEnv(t *testing.T) {
	set, gh, _ := testSet(t)
	h := http.Header{"X-Echo": {"you sent " + realToken}}
	if !set.Scrub(h) || h.Get("X-Echo") != "you sent "+gh.Placeholder() {
		t.Fatalf("scrub: %v", h)
	}
	env := set.ChildEnv([]string{"GH_TOKEN=" + realToken, "OTHER=x" + realToken, "HOME=/h"})
	joined := strings.Join(env, "\n")
	if strings.Contains(joined, realToken) || !strings.Contains(joined, "GH_TOKEN="+gh.Placeholder()) || !strings.Contains(joined, "GITHUB_TOKEN="+gh.Placeholder()) {
		t.Fatalf("child env %q", env)
	}
	if a := set.ChildArgs([]string{"-H", "Authorization: Bearer " + realToken}); strings.Contains(a[1], realToken) {
		t.Fatalf("args %q", a)
	}
}

func TestScrubBody(t *testing.T) {
	set, gh, _ := testSet(t)
	body := "a" + realToken + "b" + strings.Repeat("x", 70000) + realToken + realToken[:10]
	want := strings.ReplaceAll(body, realToken, gh.Placeholder())
	for name, r := range map[string]io.Reader{
		"whole":    strings.NewReader(body),
		"one byte": iotest.OneByteReader(strings.NewReader(body)),
		"halves":   iotest.HalfReader(strings.NewReader(body)),
	} {
		got, err := io.ReadAll(iotest.OneByteReader(set.ScrubBody(io.NopCloser(r))))
		if err != nil || string(got) != want {
			t.Errorf("%s: %v, equal %v (len %d, want %d)", name, err, string(got) == want, len(got), len(want))
		}
	}
}

// TestScrubForms: a value echoed percent-encoded or inside base64 (an
// echoed Basic header), at any alignment, is scrubbed too.
func TestScrubForms(t *testing.T) {
	set, _, _ := testSet(t)
	for _, prefix := range []string{"", "a", "ab", "x-access-token:"} {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			echoed := enc.EncodeToString([]byte(prefix + realToken + "!"))
			dec, err := enc.DecodeString(set.ScrubString(echoed))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i+6 <= len(realToken); i++ {
				if strings.Contains(string(dec), realToken[i:i+6]) && i >= 4 {
					t.Errorf("prefix %q: %q still holds %q of the value", prefix, dec, realToken[i:i+6])
				}
			}
			body, _ := io.ReadAll(set.ScrubBody(io.NopCloser(iotest.OneByteReader(strings.NewReader("{" + echoed + "}")))))
			if string(body) != "{"+set.ScrubString(echoed)+"}" {
				t.Errorf("body scrub %q", body)
			}
		}
	}
	if s := set.ScrubString(url.QueryEscape("a b " + realToken)); strings.Contains(s, realToken) {
		t.Errorf("percent-encoded: %q", s)
	}
}

// TestSwapSplitPlaceholder: a placeholder split across headers (or across
// a header and the path) is no placeholder: nothing is swapped, so no part
// of the real value is sent.
func TestSwapSplitPlaceholder(t *testing.T) {
	set, gh, _ := testSet(t)
	ph := gh.Placeholder()
	r := request(t, "https://api.github.test/"+ph[:20], "X-A", ph[:20], "X-B", ph[20:], "Authorization", "Bearer "+ph[:20])
	r.Header.Add("Authorization", ph[20:])
	if err := set.Swap(r, "api.github.test", 443); err != nil {
		t.Fatal(err)
	}
	var all []string
	for _, vs := range r.Header {
		all = append(all, vs...)
	}
	if got := strings.Join(append(all, r.URL.Path), "|"); strings.Contains(got, gh.Value()[4:14]) || strings.Contains(got, gh.Value()[20:30]) {
		t.Fatalf("part of the value was sent: %q", got)
	}
}

// TestScrubBodyDoesNotHoldStreams: a streamed answer's event is returned
// as soon as it is read, unless its last bytes could begin a value (those
// wait for the next read, then pass scrubbed).
func TestScrubBodyDoesNotHoldStreams(t *testing.T) {
	set, gh, _ := testSet(t)
	pr, pw := io.Pipe()
	body := set.ScrubBody(pr)
	go func() { io.WriteString(pw, "data: hello\n\n") }()
	buf := make([]byte, 64)
	n, err := body.Read(buf)
	if err != nil || string(buf[:n]) != "data: hello\n\n" {
		t.Fatalf("first event: %q %v (held back)", buf[:n], err)
	}
	go func() {
		io.WriteString(pw, "data: "+realToken[:4])
		io.WriteString(pw, realToken[4:]+"\n\n")
		pw.Close()
	}()
	rest, err := io.ReadAll(body)
	if err != nil || string(rest) != "data: "+gh.Placeholder()+"\n\n" {
		t.Errorf("a value split across reads: %q %v", rest, err)
	}
}

// BenchmarkScrubBody is the scrub of a 16 MiB answer from a bound host
// (letters and digits, where a value's first byte is frequent).
func BenchmarkScrubBody(b *testing.B) {
	set, _, _ := testSet(b)
	data := []byte(strings.Repeat("abcdefghijklmnopqrstuvwxyz0123456789\n", 16<<20/37))
	b.SetBytes(int64(len(data)))
	buf := make([]byte, 32<<10)
	for b.Loop() {
		if _, err := io.CopyBuffer(io.Discard, set.ScrubBody(io.NopCloser(bytes.NewReader(data))), buf); err != nil {
			b.Fatal(err)
		}
	}
}
