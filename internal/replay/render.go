package replay

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Formats Write renders.
var Formats = []string{"text", "json"}

// Write renders r as text (a summary and a table of changes) or JSON.
func Write(w io.Writer, r *Report, format string) error {
	switch format {
	case "json":
		b, err := json.MarshalIndent(r, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding report: %w", err)
		}
		_, err = fmt.Fprintf(w, "%s\n", b)
		return err
	case "text":
		return writeText(w, r)
	default:
		return fmt.Errorf("format %q: want text or json", format)
	}
}

func writeText(w io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "replayed %d of %d events: %d changed (%d %s, %d %s), %d unchanged\n",
		r.Replayed, r.Events, r.Changed(""), r.Changed(AllowToDeny), AllowToDeny, r.Changed(DenyToAllow), DenyToAllow, r.Unchanged)
	counts(tw, "not replayable", r.NotReplayable)
	counts(tw, "skipped", r.Skipped)
	if len(r.Changes) > 0 {
		fmt.Fprintln(tw, "\nCHANGE\tHOST\tPORTS\tWAS\tNOW\tCOUNT\tFIRST DECISION\tREASON NOW")
		for _, g := range r.Changes {
			ports := make([]string, len(g.Ports))
			for i, p := range g.Ports {
				ports[i] = strconv.Itoa(p)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s (%s)\t%s\n", g.Change, g.Host, strings.Join(ports, ","),
				clean(orDash(g.Was)), clean(orDash(g.Now)), g.Count, clean(g.FirstDecisionID), clean(g.FirstSource), clean(g.Reason))
		}
	}
	return tw.Flush()
}

// counts writes "what: N (reason: n, …)" when N > 0.
func counts(w io.Writer, what string, m map[string]int) {
	total := 0
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		total += m[k]
		parts = append(parts, fmt.Sprintf("%s: %d", clean(k), m[k]))
	}
	if total > 0 {
		fmt.Fprintf(w, "%s: %d (%s)\n", what, total, strings.Join(parts, "; "))
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// clean escapes what is not printable ASCII, so that nothing read from a
// log can move the terminal's cursor or fake a line.
func clean(s string) string {
	q := strconv.QuoteToASCII(s)
	return strings.ReplaceAll(q[1:len(q)-1], `\"`, `"`)
}
