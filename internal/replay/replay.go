// Package replay re-decides logged connection decisions with another
// policy and reports what would change: allow → deny and deny → allow,
// grouped by host and rule. Inputs that were masked or erased are counted
// as not replayable, never guessed at.
package replay

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/declogread"
)

// Decider is what replays a decision: the engine.
type Decider interface {
	Decide(context.Context, engine.Input) (engine.Decision, error)
}

// Directions of a change.
const (
	AllowToDeny = "allow→deny"
	DenyToAllow = "deny→allow"
)

// Group is the changed decisions of one host, direction and pair of rules.
type Group struct {
	Change string `json:"change"`
	Host   string `json:"host"`
	Ports  []int  `json:"ports"`
	// Was and Now are the rules that decided before and now.
	Was string `json:"was_rule"`
	Now string `json:"now_rule"`
	// Reason is the new decision's reason, of the first event.
	Reason string `json:"reason"`
	Count  int    `json:"count"`
	// FirstDecisionID is the logged decision_id of the group's first event.
	FirstDecisionID string `json:"first_decision_id"`
	FirstSource     string `json:"first_source"`
}

// Report is what a replay found.
type Report struct {
	Events    int `json:"events"`    // every event read
	Replayed  int `json:"replayed"`  // re-decided
	Unchanged int `json:"unchanged"` // of those, same verdict
	// Changes are sorted by direction, host and rules.
	Changes []*Group `json:"changes"`
	// NotReplayable counts the events whose logged input is not what was
	// decided, by reason ("input masked (/input/headers)", …).
	NotReplayable map[string]int `json:"not_replayable"`
	// Skipped counts the events that are not the policy's decisions: OPA
	// REST API queries, the proxy's own denies (SSRF guard, TLS check,
	// limits).
	Skipped map[string]int `json:"skipped"`
}

// Changed counts the changed decisions of direction (any: "").
func (r *Report) Changed(direction string) int {
	n := 0
	for _, g := range r.Changes {
		if direction == "" || g.Change == direction {
			n += g.Count
		}
	}
	return n
}

// NotReplayableTotal counts the events that could not be replayed.
func (r *Report) NotReplayableTotal() int {
	n := 0
	for _, c := range r.NotReplayable {
		n += c
	}
	return n
}

// outcome is one event's replay.
type outcome struct {
	skip, notReplayable string
	in                  engine.Input
	now                 engine.Decision
}

// Run re-decides every event with d, with as many evaluations at once as
// the machine has CPUs. The report lists groups in a stable order; a
// group's first event is the first in events.
func Run(ctx context.Context, d Decider, events []declogread.Event) (*Report, error) {
	out := make([]outcome, len(events))
	work := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range work {
				out[i] = replayOne(ctx, d, &events[i])
			}
		})
	}
	for i := range events {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("replaying: %w", err)
	}
	return report(events, out), nil
}

func replayOne(ctx context.Context, d Decider, ev *declogread.Event) outcome {
	switch {
	case !ev.Connection():
		return outcome{skip: "not a connection decision (path " + quoteOr(ev.Path) + ")"}
	case ev.ProxyOwn():
		return outcome{skip: "the proxy's own deny (" + ev.Result.Rule + ")"}
	}
	in, err := ev.PolicyInput()
	if err != nil {
		return outcome{notReplayable: strings.TrimPrefix(err.Error(), declogread.ErrNotReplayable.Error()+": ")}
	}
	// A decision error is a deny (the engine fails closed) and shows as
	// such: its reason says what failed.
	now, _ := d.Decide(ctx, in)
	return outcome{in: in, now: now}
}

func quoteOr(s string) string {
	if s == "" {
		return "none"
	}
	return fmt.Sprintf("%q", s)
}

func report(events []declogread.Event, out []outcome) *Report {
	r := &Report{Events: len(events), NotReplayable: map[string]int{}, Skipped: map[string]int{}}
	groups := map[[4]string]*Group{}
	for i, o := range out {
		switch {
		case o.skip != "":
			r.Skipped[o.skip]++
			continue
		case o.notReplayable != "":
			r.NotReplayable[o.notReplayable]++
			continue
		}
		r.Replayed++
		was := events[i].Result
		before, after := was.PolicyAllowed(), o.now.Allow && !o.now.Audit
		if before == after {
			r.Unchanged++
			continue
		}
		change := AllowToDeny
		if after {
			change = DenyToAllow
		}
		key := [4]string{change, o.in.Host, was.Rule, o.now.Rule}
		g := groups[key]
		if g == nil {
			g = &Group{Change: change, Host: o.in.Host, Was: was.Rule, Now: o.now.Rule, Reason: o.now.Reason,
				FirstDecisionID: events[i].DecisionID, FirstSource: events[i].Source}
			groups[key] = g
		}
		g.Count++
		if !slices.Contains(g.Ports, o.in.Port) {
			g.Ports = append(g.Ports, o.in.Port)
		}
	}
	for _, k := range slices.SortedFunc(maps.Keys(groups), func(a, b [4]string) int { return slices.Compare(a[:], b[:]) }) {
		slices.Sort(groups[k].Ports)
		r.Changes = append(r.Changes, groups[k])
	}
	return r
}
