package suggest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	regofmt "github.com/open-policy-agent/opa/v1/format"
)

// Formats Write renders.
const (
	FormatYAML = "yaml" // regate's configuration: the allow: list
	FormatJSON = "json" // a data document for data.regate.allow
	FormatRego = "rego" // a Rego module defining data.regate.allow
)

// Formats are the values of --format.
var Formats = []string{FormatYAML, FormatJSON, FormatRego}

// maxListed bounds the destinations a comment names.
const maxListed = 5

// Write renders res in format; every suggestion carries a comment saying
// which connections it came from (in JSON, as the pattern's value: the
// policy reads only the keys).
func Write(w io.Writer, res Result, format string) error {
	var b bytes.Buffer
	switch format {
	case FormatYAML:
		writeYAML(&b, res)
	case FormatJSON:
		obj := make(map[string]string, len(res.Allow))
		for _, s := range res.Allow {
			obj[s.Pattern] = comment(&s)
		}
		doc, err := json.MarshalIndent(map[string]any{"regate": map[string]any{"allow": obj}}, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding suggestion: %w", err)
		}
		b.Write(doc)
		b.WriteByte('\n')
	case FormatRego:
		writeRego(&b, res)
		src, err := regofmt.Source("suggested.rego", b.Bytes())
		if err != nil {
			return fmt.Errorf("formatting suggestion: %w", err)
		}
		b = *bytes.NewBuffer(src)
	default:
		return fmt.Errorf("format %q: want one of %s", format, strings.Join(Formats, ", "))
	}
	_, err := w.Write(b.Bytes())
	return err
}

func writeYAML(b *bytes.Buffer, res Result) {
	header(b, res, "#")
	if len(res.Allow) == 0 {
		b.WriteString("allow: []\n")
	} else {
		b.WriteString("allow:\n")
	}
	for _, s := range res.Allow {
		fmt.Fprintf(b, "  # %s\n  - %s\n", comment(&s), strconv.Quote(s.Pattern))
	}
	kept(b, res, "#")
}

func writeRego(b *bytes.Buffer, res Result) {
	header(b, res, "#")
	// Object form, as regate writes data.regate.allow: a set would not
	// type-check against the pattern library's probe for a list.
	b.WriteString("package regate\n")
	if len(res.Allow) == 0 {
		b.WriteString("\n# Nothing to allow.\n")
	}
	for _, s := range res.Allow {
		fmt.Fprintf(b, "\n# %s\nallow[%s] := true\n", comment(&s), strconv.Quote(s.Pattern))
	}
	kept(b, res, "#")
}

func header(b *bytes.Buffer, res Result, c string) {
	n, d := 0, 0
	for _, s := range res.Allow {
		n += s.Connections()
		d += len(s.Dests)
	}
	verb := "allow"
	if len(res.Allow) == 1 {
		verb = "allows"
	}
	fmt.Fprintf(b, "%s Suggested by regate suggest: %d %s %s the %d denied or audited\n%s %s (%d %s) of the decision logs read.\n",
		c, len(res.Allow), plural(len(res.Allow), "pattern"), verb, n, c, plural(n, "connection"), d, plural(d, "destination"))
}

func kept(b *bytes.Buffer, res Result, c string) {
	for _, d := range res.Kept {
		fmt.Fprintf(b, "%s kept denied (--keep-denied): %s, %d connections seen\n", c, d, d.Connections)
	}
}

// comment says how many connections a suggestion came from and from
// where. Everything taken from the logs is escaped: a label value cannot
// end the comment and add a line.
func comment(s *Suggestion) string {
	var hosts, attempts, labels, rules []string
	for i, d := range s.Dests {
		if i < maxListed {
			hosts = append(hosts, d.String())
		}
		for _, a := range d.Attempts {
			if a == "" {
				a = "(anonymous)"
			}
			attempts = addSorted(attempts, a)
		}
		for _, l := range d.Labels {
			labels = addSorted(labels, l)
		}
		for _, r := range d.Rules {
			rules = addSorted(rules, r)
		}
	}
	if len(s.Dests) > maxListed {
		hosts = append(hosts, fmt.Sprintf("and %d more", len(s.Dests)-maxListed))
	}
	out := fmt.Sprintf("%d %s to %s", s.Connections(), plural(s.Connections(), "connection"), strings.Join(hosts, ", "))
	for _, part := range []struct {
		name string
		vals []string
	}{{"attempts", attempts}, {"labels", labels}, {"rules", rules}} {
		if len(part.vals) > 0 {
			out += "; " + part.name + " " + strings.Join(part.vals, ", ")
		}
	}
	return clean(out)
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}

// clean escapes what is not printable ASCII.
func clean(s string) string {
	q := strconv.QuoteToASCII(s)
	q = q[1 : len(q)-1]
	return strings.ReplaceAll(q, `\"`, `"`)
}
