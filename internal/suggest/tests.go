package suggest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	regofmt "github.com/open-policy-agent/opa/v1/format"

	"github.com/regate/regate/engine"
)

// WriteTests writes a Rego test module with one test per observed
// destination, asserting that the policy allows it (not in audit), and one
// per kept destination, asserting that it is denied. The tests evaluate
// data.regate.network.decision with the logged input.
//
// A JSON or Rego suggestion is meant to sit in the policy repository, so
// the tests read data.regate.allow from there. A YAML one is regate's
// configuration, which opa test does not see: the tests then carry the
// suggested list themselves (with data.regate.allow as …).
func WriteTests(w io.Writer, res Result, format string) error {
	var b bytes.Buffer
	b.WriteString(`# Written by regate suggest --test: one test per destination seen in the
# decision logs, asserting the decision of the suggested allow list (allowed,
# or denied for the destinations kept denied with --keep-denied).
package regate.suggested_test

import data.regate.network
`)
	with := ""
	if format == FormatYAML {
		set := make(map[string]bool, len(res.Allow))
		for _, s := range res.Allow {
			set[s.Pattern] = true
		}
		doc, err := json.Marshal(set)
		if err != nil {
			return fmt.Errorf("encoding suggestion: %w", err)
		}
		fmt.Fprintf(&b, "\n# The suggested allow list: regate's configuration is not data opa test sees.\nsuggested := %s\n", doc)
		with = " with data.regate.allow as suggested"
	}
	names := map[string]int{}
	for _, s := range res.Allow {
		for _, d := range s.Dests {
			in, err := testInput(d)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, "\n# %s, by %s\n%s if {\n\td := network.decision with input as %s%s\n\td.allow == true\n\tnot d.audit\n}\n",
				clean(d.String()), strconv.Quote(s.Pattern), testName("allowed", d.Target, names), in, with)
		}
	}
	for _, d := range res.Kept {
		in, err := testInput(d)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "\n# %s, kept denied\n%s if {\n\td := network.decision with input as %s%s\n\td.allow == false\n}\n",
			clean(d.String()), testName("denied", d.Target, names), in, with)
	}
	src, err := regofmt.Source("suggested_test.rego", b.Bytes())
	if err != nil {
		return fmt.Errorf("formatting tests: %w", err)
	}
	_, err = w.Write(src)
	return err
}

// testInput is the input of d's test: the first logged input, or a
// tunnel to it when none was seen. JSON is Rego.
func testInput(d *Dest) (string, error) {
	if d.Input != nil {
		var compact bytes.Buffer
		if err := json.Compact(&compact, d.Input); err != nil {
			return "", fmt.Errorf("input of %s: %w", d, err)
		}
		return compact.String(), nil
	}
	b, err := json.Marshal(map[string]any{
		"host": d.Host, "port": d.Port, "scheme": engine.SchemeHTTPS, "method": engine.MethodConnect,
		"attempt_id": "", "host_is_ip": d.HostIsIP,
		"attempt": map[string]any{"labels": map[string]string{}, "allow": []string{}, "deny": []string{}},
	})
	if err != nil {
		return "", fmt.Errorf("input of %s: %w", d, err)
	}
	return string(b), nil
}

// testName is a unique rule name for the test of t.
func testName(verdict string, t Target, seen map[string]int) string {
	var b strings.Builder
	b.WriteString("test_" + verdict + "_")
	for _, r := range t.Host + "_" + strconv.Itoa(t.Port) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := b.String()
	seen[name]++
	if n := seen[name]; n > 1 {
		name += "_" + strconv.Itoa(n)
	}
	return name
}
