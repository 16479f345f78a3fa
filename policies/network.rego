# Package network is regate's default, data-driven policy: the engine asks
# data.regate.network.decision for every connection.
#
# Data, each optional:
#   data.regate.deny, data.regate.allow  patterns (see lib/patterns.rego),
#       as an object keyed by pattern ({"github.com": true}, any value) or a
#       list (["github.com"]); keep big collections in object form
#   data.regate.methods  the methods allowed for plain HTTP (scheme "http");
#       absent or empty: every method
#
# Order: a deny pattern (data, then the attempt's) denies; a method outside
# data.regate.methods denies a plain HTTP request; an allow pattern (data,
# then the attempt's) allows; anything else is denied. A bare "*" in a deny
# list is ignored (deny-all is already the default); "*:PORT" is honoured.
package regate.network

import data.regate.lib.hits

default decision := {"allow": false, "reason": "no rule allows the destination", "rule": "default"}

decision := _deny("deny", "denied by pattern", hits.deny) if {
	hits.deny
} else := _deny("attempt.deny", "denied by the attempt's pattern", hits.attempt_deny) if {
	hits.attempt_deny
} else := {"allow": false, "reason": sprintf("method %s is not allowed for plain HTTP", [input.method]), "rule": "methods"} if {
	_method_refused
} else := _allow("allow", "allowed by pattern", hits.allow) if {
	hits.allow
} else := _allow("attempt.allow", "allowed by the attempt's pattern", hits.attempt_allow) if {
	hits.attempt_allow
} else := {"allow": false, "reason": concat(" ", ["no rule allows", input.host]), "rule": "default"}

_deny(source, why, p) := {"allow": false, "reason": sprintf("%s %q", [why, p]), "rule": concat(":", [source, p])}

_allow(source, why, p) := {"allow": true, "reason": sprintf("%s %q", [why, p]), "rule": concat(":", [source, p])}

_method_refused if {
	input.scheme == "http"
	methods := {upper(m) | some m in data.regate.methods}
	count(methods) > 0
	not upper(input.method) in methods
}
