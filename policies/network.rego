# Package network is regate's default, data-driven policy: the engine asks
# data.regate.network.decision for every connection.
#
# Data, each optional:
#   data.regate.deny, data.regate.allow  patterns (see lib/patterns.rego),
#       as an object keyed by pattern ({"github.com": true}, any value) or a
#       list (["github.com"]); keep big collections in object form
#   data.regate.methods  the methods allowed for plain HTTP (scheme "http")
#       and for the requests inside inspected tunnels; absent or empty:
#       every method
#   data.regate.inspect  patterns of hosts whose allowed tunnels are
#       inspected ("inspect": true): each HTTPS request inside is decided
#   data.regate.paths  {"HOST": ["/GLOB", …]}: the only paths allowed on
#       HOST (glob.match with "/" as delimiter: * within a segment, ** across
#       them); such a host is allowed and its tunnels are inspected
#   data.regate.secrets  {"NAME": ["PATTERN", …]}: the hosts each secret is
#       bound to (regate writes it from its secrets configuration)
#
# Order: a deny pattern (data, then the attempt's) denies; a secret's
# placeholder (input.secrets) sent to a host the secret is not bound to
# denies; a method outside
# data.regate.methods denies a plain or inspected request; a path outside
# the host's data.regate.paths denies one; an allow pattern (data, then the
# attempt's), or path rules of the host, allow; anything else is denied. A
# bare "*" in a deny list is ignored (deny-all is already the default);
# "*:PORT" is honoured.
package regate.network

import data.regate.lib.hits
import data.regate.lib.patterns

default decision := {"allow": false, "reason": "no rule allows the destination", "rule": "default"}

# Every decision the cache cannot answer runs this chain, so the common
# branches (a data pattern denies or allows) are written out rather than
# calling _deny/_allow, and the rarer checks start with what is cheapest to
# find absent (input.secrets, data.regate.methods, data.regate.paths,
# data.regate.inspect): each rule evaluated costs, whatever it decides.

decision := {"allow": false, "reason": sprintf("denied by pattern %q", [p]), "rule": concat(":", ["deny", p])} if {
	p := hits.deny
} else := _deny("attempt.deny", "denied by the attempt's pattern", hits.attempt_deny) if {
	hits.attempt_deny
} else := {"allow": false, "reason": _secret_reason, "rule": "secrets"} if {
	input.secrets
	count(_stray_secrets) > 0
} else := {"allow": false, "reason": sprintf("method %s is not allowed for %s", [input.method, _what]), "rule": "methods"} if {
	_method_refused
} else := {"allow": false, "reason": sprintf("path %s is not allowed on %s", [input.path, input.host]), "rule": "paths"} if {
	_path_refused
} else := object.union({"allow": true, "reason": sprintf("allowed by pattern %q", [p]), "rule": concat(":", ["allow", p])}, _inspect) if {
	p := hits.allow
} else := _allow("attempt.allow", "allowed by the attempt's pattern", hits.attempt_allow) if {
	hits.attempt_allow
} else := _allow("paths", "allowed with path rules for", input.host) if {
	_path_rules
} else := {"allow": false, "reason": concat(" ", ["no rule allows", input.host]), "rule": "default"}

_deny(source, why, p) := {"allow": false, "reason": sprintf("%s %q", [why, p]), "rule": concat(":", [source, p])}

_allow(source, why, p) := object.union(
	{"allow": true, "reason": sprintf("%s %q", [why, p]), "rule": concat(":", [source, p])},
	_inspect,
)

# The secrets whose placeholder the request carries to a host they are not
# bound to: regate never replaces them there, and sending them is either a
# mistake or an attempt to learn where the placeholder goes.
_stray_secrets contains name if {
	some name in input.secrets
	not _bound(name)
}

_bound(name) if patterns.first_hit(hits.specific_candidates, data.regate.secrets[name])

_secret_reason := sprintf("the request carries the placeholder of secret %s, which is not for %s", [concat(", ", sort(_stray_secrets)), input.host])

# A request the method and path rules apply to: plain HTTP, or inside an
# inspected tunnel.
_request if input.scheme == "http"

_request if input.tls.inspected == true

_what := "plain HTTP" if input.scheme == "http"

else := "HTTPS requests"

_method_refused if {
	data.regate.methods
	_request
	methods := {upper(m) | some m in data.regate.methods}
	count(methods) > 0
	not upper(input.method) in methods
}

_path_rules := data.regate.paths[input.host] if is_array(data.regate.paths[input.host])

_path_refused if {
	data.regate.paths
	_request
	rules := _path_rules
	not _path_matches(rules)
}

_path_matches(rules) if {
	some r in rules
	glob.match(r, ["/"], input.path)
}

# An allowed tunnel is inspected when its host matches data.regate.inspect
# or has path rules (which hold for HTTPS only when inspected).
_inspect := {"inspect": true} if {
	input.method == "CONNECT"
	_inspected_host
} else := {}

_inspected_host if {
	data.regate.inspect
	hits.inspect
}

_inspected_host if is_array(data.regate.paths[input.host])
