# Package network is the org-wide base policy: it owns the decision and
# consults the team bundle (data.regate.team, see bundles/team), which may
# add allows and denies but never override an org deny. It needs the pattern
# library (packages regate.lib.*), shipped as its own bundle with the root
# regate/lib from policies/lib.
#
# Order, first match decides:
#   deny   org.deny, team.deny, deny (data.regate.deny), attempt.deny
#   method data.regate.org.methods and data.regate.methods, for plain HTTP
#   allow  org.allow, team.allow (never "*" or "*:PORT"), team.rule (the
#          team's grants); then, only while data.regate.org.trust_local_allow
#          is true, allow (--allow, config, admin API) and attempt.allow
#   else   deny, "no rule allows <host>"
#
# The org's and team's lists are small bundle data, passed by value to
# first_hit; data.regate.* may be huge and is looked up by reference in
# lib/hits.rego.
package regate.network

import data.regate.lib.hits
import data.regate.lib.patterns

default decision := {"allow": false, "reason": "no rule allows the destination", "rule": "default"}

decision := _deny("org.deny", "org pattern", p) if {
	p := patterns.first_hit(hits.deny_candidates, data.regate.org.deny)
} else := _deny("team.deny", "team pattern", p) if {
	p := patterns.first_hit(hits.deny_candidates, data.regate.team.deny)
} else := _deny("deny", "pattern", hits.deny) if {
	hits.deny
} else := _deny("attempt.deny", "the attempt's pattern", hits.attempt_deny) if {
	hits.attempt_deny
} else := {"allow": false, "reason": sprintf("method %s is not allowed for plain HTTP", [input.method]), "rule": "methods"} if {
	_method_refused
} else := _allow("org.allow", "org pattern", p) if {
	p := patterns.first_hit(hits.candidates, data.regate.org.allow)
} else := _allow("team.allow", "team pattern", p) if {
	p := patterns.first_hit(hits.specific_candidates, data.regate.team.allow)
} else := _allow("team.rule", "team rule", g) if {
	g := min(data.regate.team.grants)
} else := _allow("allow", "pattern", hits.allow) if {
	_trust_local
	hits.allow
} else := _allow("attempt.allow", "the attempt's pattern", hits.attempt_allow) if {
	_trust_local
	hits.attempt_allow
} else := {"allow": false, "reason": concat(" ", ["no rule allows", input.host]), "rule": "default"}

_deny(source, what, p) := {"allow": false, "reason": sprintf("denied by %s %q", [what, p]), "rule": concat(":", [source, p])}

_allow(source, what, p) := {"allow": true, "reason": sprintf("allowed by %s %q", [what, p]), "rule": concat(":", [source, p])}

_trust_local if data.regate.org.trust_local_allow == true

# Either list of methods, when set and not empty, restricts plain HTTP.
_method_refused if {
	input.scheme == "http"
	_not_in(input.method, data.regate.org.methods)
}

_method_refused if {
	input.scheme == "http"
	_not_in(input.method, data.regate.methods)
}

_not_in(method, methods) if {
	count(methods) > 0
	not upper(method) in {upper(m) | some m in methods}
}
