// Package declogread reads decision-log events back: the JSON lines of
// --decision-log, OPA's upload batches (gzip'd JSON arrays, as a log
// receiver stores them) and the admin API's GET /v1/decisions answer. It
// is what `regate suggest` and `regate replay` read their logs with.
package declogread

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/regate/regate/engine"
)

// Event is one decision-log event as read back.
type Event struct {
	// Source says where the event was read: "d.jsonl:12", or
	// "batch.json.gz:1[3]" for the fourth event of the array that starts
	// on line 1.
	Source     string
	DecisionID string
	Path       string
	Timestamp  time.Time
	Labels     map[string]string
	// Input is the logged input, nil when the event carries none (OPA's
	// mask policy erased it).
	Input json.RawMessage
	// Result is the logged result read as the engine reads a policy's
	// answer: anything but an object with a boolean allow is a deny.
	Result Result
	// Erased and Masked are OPA's lists of what its mask policy removed
	// or replaced ("/input/headers", …).
	Erased, Masked []string
}

// Result is a logged decision.
type Result struct {
	Allow  bool   `json:"allow"`
	Audit  bool   `json:"audit,omitempty"`
	Reason string `json:"reason,omitempty"`
	Rule   string `json:"rule,omitempty"`
}

// PolicyAllowed is what the policy said, whatever was enforced: an audited
// event (allowed in report mode, "would deny") counts as denied.
func (r Result) PolicyAllowed() bool { return r.Allow && !r.Audit }

// Connection reports whether the event is a connection decision (not an
// evaluation through OPA's REST API).
func (ev *Event) Connection() bool { return ev.Path == engine.DecisionPath }

// ownRulePrefixes are the rules of the denies the proxy makes itself, after
// or instead of the policy (proxy/flow.go, proxy/pipeline.go,
// proxy/secrets.go, internal/isolate/transparent), and the engine's own
// fail-closed rule: no allow list and no policy change undoes them.
var ownRulePrefixes = []string{"proxy:", "ssrf:", "secrets:", "isolate:"}

// ProxyOwn reports whether the event is a deny of the proxy's own (SSRF
// guard, TLS check, limits, secrets, dropped UDP) rather than the policy's.
func (ev *Event) ProxyOwn() bool {
	for _, p := range ownRulePrefixes {
		if strings.HasPrefix(ev.Result.Rule, p) {
			return true
		}
	}
	return false
}

// Dest is the destination of a logged connection: the input's fields that
// name it and the attempt it came from.
type Dest struct {
	Host      string
	Port      int
	HostIsIP  bool
	Scheme    string
	Method    string
	AttemptID string
	Labels    map[string]string
}

// Dest reads the destination from the logged input, leniently: a masked
// header does not hide where the connection went. The host is normalised
// again; an input without a valid host and port is an error.
func (ev *Event) Dest() (Dest, error) {
	if ev.Input == nil {
		return Dest{}, errors.New("event has no input")
	}
	// Only the fields that name the destination: a field of another shape
	// elsewhere in the input does not hide where the connection went.
	var in struct {
		Host      string `json:"host"`
		Port      int    `json:"port"`
		Scheme    string `json:"scheme"`
		Method    string `json:"method"`
		AttemptID string `json:"attempt_id"`
		Attempt   struct {
			Labels map[string]string `json:"labels"`
		} `json:"attempt"`
	}
	if err := json.Unmarshal(ev.Input, &in); err != nil {
		return Dest{}, fmt.Errorf("reading input: %w", err)
	}
	host, isIP, err := engine.NormalizeHost(in.Host)
	if err != nil {
		return Dest{}, fmt.Errorf("input host: %w", err)
	}
	if in.Port < 1 || in.Port > 65535 {
		return Dest{}, fmt.Errorf("input port %d is not 1-65535", in.Port)
	}
	return Dest{Host: host, Port: in.Port, HostIsIP: isIP, Scheme: in.Scheme, Method: in.Method,
		AttemptID: in.AttemptID, Labels: in.Attempt.Labels}, nil
}

// ErrNotReplayable is wrapped by PolicyInput when the logged input is not
// the input that was decided.
var ErrNotReplayable = errors.New("not replayable")

// PolicyInput is the input that was decided, exactly: an event whose
// input was erased or masked by OPA's mask policy, whose credential
// headers were redacted, or whose input has fields this regate does not
// know is not replayable (ErrNotReplayable), never guessed at.
func (ev *Event) PolicyInput() (engine.Input, error) {
	if ev.Input == nil || bytes.Equal(bytes.TrimSpace(ev.Input), []byte("null")) {
		return engine.Input{}, fmt.Errorf("%w: input erased", ErrNotReplayable)
	}
	for _, p := range slices.Concat(ev.Erased, ev.Masked) {
		if p == "/input" || strings.HasPrefix(p, "/input/") {
			return engine.Input{}, fmt.Errorf("%w: input masked (%s)", ErrNotReplayable, p)
		}
	}
	// input.candidates is derived from host and port (and left out of
	// regate's logs); the engine computes it again.
	var logged struct {
		engine.Input
		Candidates any `json:"candidates"`
	}
	dec := json.NewDecoder(bytes.NewReader(ev.Input))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&logged); err != nil {
		return engine.Input{}, fmt.Errorf("%w: input: %w", ErrNotReplayable, err)
	}
	in := logged.Input
	for k, v := range in.Headers {
		if v == engine.Redacted && slices.Contains(engine.MaskedHeaders, k) {
			return engine.Input{}, fmt.Errorf("%w: header %s redacted", ErrNotReplayable, k)
		}
	}
	host, isIP, err := engine.NormalizeHost(in.Host)
	if err != nil || host != in.Host || isIP != in.HostIsIP {
		return engine.Input{}, fmt.Errorf("%w: input host %q is not normalised", ErrNotReplayable, in.Host)
	}
	return in, nil
}
