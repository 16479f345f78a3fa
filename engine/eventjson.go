package engine

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/plugins/logs"
)

// appendEventJSON appends ev exactly as encoding/json encodes it (OPA's
// EventV1, byte for byte: field order, omitempty, sorted map keys, HTML
// escaping), without reflection, for the events regate's decisions make.
// It returns false, having appended nothing usable, when ev holds a value
// it does not encode (an error, a rule label, a request context, a float
// that encoding/json refuses, a type it does not know); the caller then
// uses encoding/json. TestEventJSONMatchesEncodingJSON holds the two
// equal, and fails when EventV1 or Input gains a field this does not
// write.
func appendEventJSON(b []byte, ev *logs.EventV1) ([]byte, bool) {
	if ev.Error != nil || len(ev.RuleLabels) > 0 || ev.RequestContext != nil {
		return b, false
	}
	ok := true
	b = append(b, `{"labels":`...)
	b = appendStringMap(b, ev.Labels, true)
	b = append(b, `,"decision_id":`...)
	b = appendString(b, ev.DecisionID)
	b = appendOptString(b, `,"batch_decision_id":`, ev.BatchDecisionID)
	b = appendOptString(b, `,"trace_id":`, ev.TraceID)
	b = appendOptString(b, `,"span_id":`, ev.SpanID)
	b = appendOptString(b, `,"revision":`, ev.Revision)
	if len(ev.Bundles) > 0 {
		b = append(b, `,"bundles":{`...)
		var keyBuf [8]string
		for i, name := range sortedKeys(keyBuf[:0], ev.Bundles) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, name)
			b = append(b, ":{"...)
			if rev := ev.Bundles[name].Revision; rev != "" {
				b = append(b, `"revision":`...)
				b = appendString(b, rev)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = appendOptString(b, `,"path":`, ev.Path)
	b = appendOptString(b, `,"query":`, ev.Query)
	b, ok = appendOptAnyPtr(b, `,"input":`, ev.Input, ok)
	b, ok = appendOptAnyPtr(b, `,"result":`, ev.Result, ok)
	b, ok = appendOptMap(b, `,"intermediate_results":`, ev.IntermediateResults, ok)
	b, ok = appendOptAnyPtr(b, `,"mapped_result":`, ev.MappedResult, ok)
	b, ok = appendOptAnyPtr(b, `,"nd_builtin_cache":`, ev.NDBuiltinCache, ok)
	if len(ev.Erased) > 0 {
		b = append(b, `,"erased":`...)
		b = appendStrings(b, ev.Erased)
	}
	if len(ev.Masked) > 0 {
		b = append(b, `,"masked":`...)
		b = appendStrings(b, ev.Masked)
	}
	b = appendOptString(b, `,"requested_by":`, ev.RequestedBy)
	b = append(b, `,"timestamp":"`...)
	var err error
	if b, err = ev.Timestamp.AppendText(b); err != nil {
		return b, false
	}
	b = append(b, '"')
	b, ok = appendOptMap(b, `,"metrics":`, ev.Metrics, ok)
	if ev.RequestID != 0 {
		b = append(b, `,"req_id":`...)
		b = strconv.AppendUint(b, ev.RequestID, 10)
	}
	b, ok = appendOptMap(b, `,"custom":`, ev.Custom, ok)
	return append(b, '}'), ok
}

// eventFields are the JSON names of EventV1's fields that appendEventJSON
// writes or refuses, in its order; the test compares them with EventV1's.
var eventFields = []string{
	"labels", "decision_id", "batch_decision_id", "trace_id", "span_id", "revision", "bundles",
	"path", "query", "input", "result", "intermediate_results", "mapped_result", "nd_builtin_cache",
	"erased", "masked", "error", "requested_by", "timestamp", "metrics", "req_id", "rule_labels",
	"request_context", "custom",
}

func appendOptString(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

func appendOptAnyPtr(b []byte, key string, v *any, ok bool) ([]byte, bool) {
	if v == nil || !ok {
		return b, ok
	}
	return appendAny(append(b, key...), *v)
}

func appendOptMap(b []byte, key string, m map[string]any, ok bool) ([]byte, bool) {
	if len(m) == 0 || !ok {
		return b, ok
	}
	return appendAny(append(b, key...), m)
}

// appendAny appends the values decision events carry: the logged input,
// policy results and OPA's metrics.
func appendAny(b []byte, v any) ([]byte, bool) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), true
	case string:
		return appendString(b, v), true
	case bool:
		return strconv.AppendBool(b, v), true
	case int:
		return strconv.AppendInt(b, int64(v), 10), true
	case int64:
		return strconv.AppendInt(b, v, 10), true
	case uint64:
		return strconv.AppendUint(b, v, 10), true
	case float64:
		return appendFloat(b, v)
	case json.Number:
		return appendNumber(b, v)
	case map[string]any:
		return appendAnyMap(b, v)
	case []any:
		b = append(b, '[')
		ok := true
		for i, e := range v {
			if i > 0 {
				b = append(b, ',')
			}
			if b, ok = appendAny(b, e); !ok {
				return b, false
			}
		}
		return append(b, ']'), true
	case map[string]string:
		return appendStringMap(b, v, true), true
	case []string:
		return appendStrings(b, v), true
	case logInput:
		return appendLogInput(b, v.Input), true
	}
	return b, false
}

func appendAnyMap(b []byte, m map[string]any) ([]byte, bool) {
	if m == nil {
		return append(b, "null"...), true
	}
	b = append(b, '{')
	ok := true
	var keyBuf [8]string
	for i, k := range sortedKeys(keyBuf[:0], m) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		if b, ok = appendAny(b, m[k]); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

// appendStringMap appends m with sorted keys; nil is null when nilNull,
// else {}.
func appendStringMap(b []byte, m map[string]string, nilNull bool) []byte {
	if m == nil && nilNull {
		return append(b, "null"...)
	}
	b = append(b, '{')
	var keyBuf [8]string
	for i, k := range sortedKeys(keyBuf[:0], m) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

// appendStrings appends s; nil is null.
func appendStrings(b []byte, s []string) []byte {
	if s == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, e := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, e)
	}
	return append(b, ']')
}

// sortedKeys are m's keys in encoding/json's order (byte-wise), in keys
// (a caller's array, so that small maps allocate nothing).
func sortedKeys[V any](keys []string, m map[string]V) []string {
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendLogInput appends in as logInput's MarshalJSON does: Input's
// fields, credential headers masked, then the attempt (always present,
// its lists never null, audit only when true).
func appendLogInput(b []byte, in *Input) []byte {
	b = append(b, `{"host":`...)
	b = appendString(b, in.Host)
	b = append(b, `,"port":`...)
	b = strconv.AppendInt(b, int64(in.Port), 10)
	b = append(b, `,"scheme":`...)
	b = appendString(b, in.Scheme)
	b = append(b, `,"method":`...)
	b = appendString(b, in.Method)
	b = append(b, `,"attempt_id":`...)
	b = appendString(b, in.AttemptID)
	b = appendOptString(b, `,"path":`, in.Path)
	b = append(b, `,"host_is_ip":`...)
	b = strconv.AppendBool(b, in.HostIsIP)
	if in.TLS != nil {
		b = append(b, `,"tls":{"sni":`...)
		b = appendString(b, in.TLS.SNI)
		if in.TLS.Inspected {
			b = append(b, `,"inspected":true`...)
		}
		b = append(b, '}')
	}
	if in.Client != nil {
		b = append(b, `,"client":{"addr":`...)
		b = appendString(b, in.Client.Addr)
		b = append(b, `,"listener":`...)
		b = appendString(b, in.Client.Listener)
		b = append(b, '}')
	}
	if in.Transparent != nil {
		b = append(b, `,"transparent":{"addr":`...)
		b = appendString(b, in.Transparent.Addr)
		b = append(b, '}')
	}
	if len(in.Headers) > 0 {
		b = append(b, `,"headers":{`...)
		var keyBuf [8]string
		for i, k := range sortedKeys(keyBuf[:0], in.Headers) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, k), ':')
			v := in.Headers[k]
			if slices.Contains(MaskedHeaders, k) {
				v = Redacted
			}
			b = appendString(b, v)
		}
		b = append(b, '}')
	}
	if len(in.Secrets) > 0 {
		b = append(b, `,"secrets":`...)
		b = appendStrings(b, in.Secrets)
	}
	b = append(b, `,"attempt":{"labels":`...)
	a := in.Attempt
	if a == nil {
		a = &Attempt{}
	}
	b = appendStringMap(b, a.Labels, false)
	b = append(b, `,"allow":`...)
	b = appendStrings(b, nonNilSlice(a.Allow))
	b = append(b, `,"deny":`...)
	b = appendStrings(b, nonNilSlice(a.Deny))
	if a.Audit {
		b = append(b, `,"audit":true`...)
	}
	return append(b, "}}"...)
}

// appendFloat is encoding/json's float64 encoding; NaN and ±Inf, which it
// refuses, are not encoded.
func appendFloat(b []byte, f float64) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendNumber writes a json.Number as encoding/json does ("" is 0); one
// that is not a valid JSON number is not encoded.
func appendNumber(b []byte, n json.Number) ([]byte, bool) {
	s := string(n)
	if s == "" {
		s = "0"
	}
	if !validNumber(s) {
		return b, false
	}
	return append(b, s...), true
}

// validNumber reports whether s is a JSON number (RFC 8259).
func validNumber(s string) bool {
	if s == "" {
		return false
	}
	if s[0] == '-' {
		if s = s[1:]; s == "" {
			return false
		}
	}
	switch {
	case s[0] == '0':
		s = s[1:]
	case '1' <= s[0] && s[0] <= '9':
		for s = s[1:]; len(s) > 0 && isDigit(s[0]); s = s[1:] {
		}
	default:
		return false
	}
	if len(s) >= 2 && s[0] == '.' && isDigit(s[1]) {
		for s = s[2:]; len(s) > 0 && isDigit(s[0]); s = s[1:] {
		}
	}
	if len(s) >= 2 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if s[0] == '+' || s[0] == '-' {
			if s = s[1:]; s == "" {
				return false
			}
		}
		for ; len(s) > 0 && isDigit(s[0]); s = s[1:] {
		}
	}
	return s == ""
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

const hexDigits = "0123456789abcdef"

// appendString is encoding/json's string encoding with HTML escaping (as
// json.Marshal): <, > and & as \u003c…, control characters, U+2028 and
// U+2029 escaped, invalid UTF-8 as U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
