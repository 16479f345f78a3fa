package engine

import (
	"encoding/json"
	"maps"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// InputVersion is the version of the policy input documented in
// ARCHITECTURE.md, Policy input.
const InputVersion = 1

// Schemes a connection can arrive by.
const (
	SchemeHTTP   = "http"   // a plain proxied HTTP request
	SchemeHTTPS  = "https"  // an HTTP CONNECT tunnel
	SchemeSOCKS5 = "socks5" // a SOCKS5 CONNECT
	SchemeTCP    = "tcp"    // a transparent TCP flow of an isolated command
)

// SchemeUDP is the scheme of the deny events of UDP an isolated command
// sent (other than DNS): regate drops it without asking the policy, so it
// is not one of Schemes.
const SchemeUDP = "udp"

// Schemes are every value input.scheme takes.
var Schemes = []string{SchemeHTTP, SchemeHTTPS, SchemeSOCKS5, SchemeTCP}

// MethodConnect is the method of every tunnel, HTTP or SOCKS5.
const MethodConnect = "CONNECT"

// Input is what the policy sees as `input` (ARCHITECTURE.md, Policy input).
// New fields never break callers: construct it with named fields.
type Input struct {
	Host      string   `json:"host"`
	Port      int      `json:"port"`
	Scheme    string   `json:"scheme"`
	Method    string   `json:"method"`
	AttemptID string   `json:"attempt_id"`
	Attempt   *Attempt `json:"attempt,omitempty"`
	Path      string   `json:"path,omitempty"`
	HostIsIP  bool     `json:"host_is_ip"`
	TLS       *TLS     `json:"tls,omitempty"`
	Client    *Client  `json:"client,omitempty"`
	// Transparent is set on the flows of an isolated command that
	// connected to an address of regate's fake-IP DNS: Host is the name
	// that address stands for.
	Transparent *Transparent `json:"transparent,omitempty"`
	// Headers are a plain or inspected request's headers: lower-case
	// names, the values of a repeated header joined with ", ". Decision
	// logs record the values of credential headers (MaskedHeaders) as
	// "[redacted]".
	Headers map[string]string `json:"headers,omitempty"`
	// Secrets are the names of the secrets whose placeholder a plain or
	// inspected request carries in its request line or headers (README,
	// "Keeping secrets out of the sandbox"); the placeholder is replaced by
	// the real value only after the decision, and only on the hosts the
	// secret is bound to.
	Secrets []string `json:"secrets,omitempty"`
	// The policy also sees input.candidates, computed from Host and Port
	// by Candidates; it is not a field because callers cannot set it.
}

// Attempt is what was registered for an attempt: labels, its own lists,
// and whether it runs in audit (report-only) mode.
type Attempt struct {
	Labels map[string]string `json:"labels,omitempty"`
	Allow  []string          `json:"allow,omitempty"`
	Deny   []string          `json:"deny,omitempty"`
	// Audit asks the engine to allow what the policy denies for this
	// attempt, marked audit (Config.Audit, for one attempt). The policy
	// sees it as input.attempt.audit, present only when true.
	Audit bool `json:"audit,omitempty"`
}

// audits reports whether a is registered in audit mode; nil is not.
func (a *Attempt) audits() bool { return a != nil && a.Audit }

// TLS is present on the TLS re-check of a tunnel, and on the requests
// inside an inspected one (Inspected).
type TLS struct {
	SNI       string `json:"sni"`
	Inspected bool   `json:"inspected,omitempty"`
}

// MaskedHeaders are the headers whose values decision logs never record.
var MaskedHeaders = []string{
	"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key",
	"x-auth-token", "private-token", "x-amz-security-token", "x-goog-api-key", "x-vault-token",
}

// Redacted replaces a masked header's value in decision logs.
const Redacted = "[redacted]"

// Transparent is how a transparent flow named its destination: Addr is
// the fake-IP address it connected to, which regate's DNS inside the
// sandbox handed out for Host.
type Transparent struct {
	Addr string `json:"addr"`
}

// Client describes the connection the request came in on.
type Client struct {
	Addr     string `json:"addr"`
	Listener string `json:"listener"`
}

// AST is the input a policy evaluates: the fields plus input.candidates.
func (in *Input) AST() ast.Value { return in.policyAST(allFields) }

// policyAST is the input with only the fields f a compiled policy reads
// (cachePlan): a field no rule refers to cannot change a decision, and
// building it costs every evaluated decision.
func (in *Input) policyAST(f inputFields) ast.Value {
	terms := in.terms(false, f)
	if f.has("candidates") {
		terms = append(terms, [2]*ast.Term{inputKeys.candidates, candidatesTerm(in.Host, in.Port)})
	}
	return ast.NewObject(terms...)
}

// LogAST is the input as decision logs record it: input.candidates, derived
// from host and port (and hundreds of strings for an IPv6 host), is left
// out, and credential headers are masked.
func (in *Input) LogAST() ast.Value {
	return ast.NewObject(in.terms(true, allFields)...)
}

// inputKeys are the input's keys, and emptyAttempt the input.attempt of a
// connection without one, built once: evaluation never changes a term.
var (
	inputKeys = struct {
		host, port, scheme, method, attemptID, hostIsIP, attempt, path, tls, sni, inspected,
		client, addr, listener, transparent, headers, secrets, candidates *ast.Term
	}{
		ast.StringTerm("host"), ast.StringTerm("port"), ast.StringTerm("scheme"), ast.StringTerm("method"),
		ast.StringTerm("attempt_id"), ast.StringTerm("host_is_ip"), ast.StringTerm("attempt"), ast.StringTerm("path"),
		ast.StringTerm("tls"), ast.StringTerm("sni"), ast.StringTerm("inspected"), ast.StringTerm("client"),
		ast.StringTerm("addr"), ast.StringTerm("listener"), ast.StringTerm("transparent"), ast.StringTerm("headers"),
		ast.StringTerm("secrets"), ast.StringTerm("candidates"),
	}
	emptyAttempt = ast.NewTerm((*Attempt)(nil).ast())
)

// terms builds the fields without a JSON round trip: AST is on the hot path
// of every evaluated decision.
func (in *Input) terms(masked bool, f inputFields) [][2]*ast.Term {
	terms := make([][2]*ast.Term, 0, 14)
	item := func(k, v *ast.Term) { terms = append(terms, [2]*ast.Term{k, v}) }
	if f.has("host") {
		item(inputKeys.host, ast.StringTerm(in.Host))
	}
	if f.has("port") {
		item(inputKeys.port, ast.InternedTerm(in.Port))
	}
	if f.has("scheme") {
		item(inputKeys.scheme, ast.InternedTerm(in.Scheme))
	}
	if f.has("method") {
		item(inputKeys.method, ast.InternedTerm(in.Method))
	}
	if f.has("attempt_id") {
		item(inputKeys.attemptID, ast.InternedTerm(in.AttemptID))
	}
	if f.has("host_is_ip") {
		item(inputKeys.hostIsIP, ast.InternedTerm(in.HostIsIP))
	}
	switch {
	case !f.has("attempt"):
	case in.Attempt == nil:
		item(inputKeys.attempt, emptyAttempt)
	default:
		item(inputKeys.attempt, ast.NewTerm(in.Attempt.ast()))
	}
	if in.Path != "" && f.has("path") {
		item(inputKeys.path, ast.StringTerm(in.Path))
	}
	if in.TLS != nil && f.has("tls") {
		tls := [][2]*ast.Term{{inputKeys.sni, ast.StringTerm(in.TLS.SNI)}}
		if in.TLS.Inspected {
			tls = append(tls, [2]*ast.Term{inputKeys.inspected, ast.InternedTerm(true)})
		}
		item(inputKeys.tls, ast.ObjectTerm(tls...))
	}
	if in.Client != nil && f.has("client") {
		item(inputKeys.client, ast.ObjectTerm(
			[2]*ast.Term{inputKeys.addr, ast.StringTerm(in.Client.Addr)},
			[2]*ast.Term{inputKeys.listener, ast.InternedTerm(in.Client.Listener)},
		))
	}
	if in.Transparent != nil && f.has("transparent") {
		item(inputKeys.transparent, ast.ObjectTerm([2]*ast.Term{inputKeys.addr, ast.StringTerm(in.Transparent.Addr)}))
	}
	if in.Headers != nil && f.has("headers") {
		h := make([][2]*ast.Term, 0, len(in.Headers))
		for k, v := range in.Headers {
			if masked && slices.Contains(MaskedHeaders, k) {
				v = Redacted
			}
			h = append(h, [2]*ast.Term{ast.StringTerm(k), ast.StringTerm(v)})
		}
		item(inputKeys.headers, ast.ObjectTerm(h...))
	}
	if len(in.Secrets) > 0 && f.has("secrets") {
		item(inputKeys.secrets, ast.ArrayTerm(stringTerms(in.Secrets)...))
	}
	return terms
}

// ast renders the attempt; a nil attempt is an empty one so that policies can
// read input.attempt.allow without guarding against undefined.
func (a *Attempt) ast() ast.Value {
	var labels [][2]*ast.Term
	var allow, deny []*ast.Term
	if a != nil {
		labels = make([][2]*ast.Term, 0, len(a.Labels))
		kv := make([]ast.Term, 0, 2*len(a.Labels))
		for k, v := range a.Labels {
			kv = append(kv, ast.Term{Value: ast.String(k)}, ast.Term{Value: ast.String(v)})
			labels = append(labels, [2]*ast.Term{&kv[len(kv)-2], &kv[len(kv)-1]})
		}
		allow = stringTerms(a.Allow)
		deny = stringTerms(a.Deny)
	}
	obj := ast.NewObject(
		[2]*ast.Term{ast.InternedTerm("labels"), ast.ObjectTerm(labels...)},
		[2]*ast.Term{ast.InternedTerm("allow"), ast.ArrayTerm(allow...)},
		[2]*ast.Term{ast.InternedTerm("deny"), ast.ArrayTerm(deny...)},
	)
	if a.audits() {
		obj.Insert(ast.StringTerm("audit"), ast.BooleanTerm(true))
	}
	return obj
}

// stringTerms makes the terms of ss in one allocation, plus one per string
// for its value.
func stringTerms(ss []string) []*ast.Term {
	terms := make([]ast.Term, len(ss))
	out := make([]*ast.Term, len(ss))
	for i, s := range ss {
		terms[i].Value = ast.String(s)
		out[i] = &terms[i]
	}
	return out
}

// logInput is how a decision log writes an Input when no mask policy needs
// its AST: the same JSON as LogAST, attempt always present.
type logInput struct{ *Input }

func (l logInput) MarshalJSON() ([]byte, error) {
	type plain Input // without this method
	a := l.Attempt
	if a == nil {
		a = &Attempt{}
	}
	in := *l.Input
	in.Headers = maskedHeaders(in.Headers)
	return json.Marshal(struct {
		*plain
		Attempt attemptJSON `json:"attempt"`
	}{(*plain)(&in), attemptJSON{Labels: nonNil(a.Labels), Allow: nonNilSlice(a.Allow), Deny: nonNilSlice(a.Deny), Audit: a.Audit}})
}

// maskedHeaders is h with the values of MaskedHeaders redacted (h itself
// when it has none of them).
func maskedHeaders(h map[string]string) map[string]string {
	var out map[string]string
	for k := range h {
		if slices.Contains(MaskedHeaders, k) {
			if out == nil {
				out = maps.Clone(h)
			}
			out[k] = Redacted
		}
	}
	if out == nil {
		return h
	}
	return out
}

type attemptJSON struct {
	Labels map[string]string `json:"labels"`
	Allow  []string          `json:"allow"`
	Deny   []string          `json:"deny"`
	Audit  bool              `json:"audit,omitempty"`
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func nonNilSlice(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
