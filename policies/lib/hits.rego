# Package hits matches the query's destination (input.host, input.port)
# against regate's data contract: each rule is the most specific matching
# pattern of one collection, undefined if none matches. Rules are evaluated
# at most once per query, so any policy can use them freely.
#
#   deny, allow                  data.regate.deny, data.regate.allow
#   attempt_deny, attempt_allow  input.attempt.deny, input.attempt.allow
#
# A bare "*" never matches in a deny collection (deny-all is the default
# already, and it would make every allow meaningless); "*:PORT" does.
package regate.lib.hits

import data.regate.lib.patterns

# Every pattern that can match the destination, most specific first; the
# last two are "*:PORT" and "*".
# regate computes them in Go (input.candidates, the same array: a Go test
# compares the two) because that is several times cheaper than in Rego; any
# other caller, e.g. opa eval or opa test with a hand-written input, gets
# them computed here.
candidates := input.candidates if {
	is_array(input.candidates)
} else := patterns.candidates(input.host, input.port)

# The candidates without the bare "*", for deny collections.
deny_candidates := array.slice(candidates, 0, count(candidates) - 1)

# The candidates without "*:PORT" and "*": what a named host can match.
specific_candidates := array.slice(candidates, 0, count(candidates) - 2)

# data.regate.deny and .allow may hold 10,000 patterns. In object form (what
# regate writes) each candidate is one key lookup, O(labels of the host);
# regate's store hands the object over without copying it. In list form
# (the probe [0] is defined only for a non-empty list) they are turned into
# a set first, O(n): big collections belong in object form.
deny := hits[0] if {
	_ = data.regate.deny[0]
	set := patterns.to_set(data.regate.deny)
	hits := [c | some c in deny_candidates; set[c]]
} else := hit if {
	obj := data.regate.deny
	hits := [c | some c in candidates; _ = obj[c]]
	hit := hits[0]
	hit != "*" # the last candidate: no other matched
}

allow := hits[0] if {
	_ = data.regate.allow[0]
	set := patterns.to_set(data.regate.allow)
	hits := [c | some c in candidates; set[c]]
} else := hits[0] if {
	obj := data.regate.allow
	hits := [c | some c in candidates; _ = obj[c]]
}

# data.regate.inspect: the patterns of hosts whose tunnels are inspected.
inspect := hits[0] if {
	_ = data.regate.inspect[0]
	set := patterns.to_set(data.regate.inspect)
	hits := [c | some c in candidates; set[c]]
} else := hits[0] if {
	obj := data.regate.inspect
	hits := [c | some c in candidates; _ = obj[c]]
}

# The attempt's lists are small; the common empty list costs one probe.
attempt_deny := hits[0] if {
	_ = input.attempt.deny[0]
	set := patterns.to_set(input.attempt.deny)
	hits := [c | some c in candidates; c != "*"; set[c]]
}

attempt_allow := patterns.first_hit(candidates, input.attempt.allow) if _ = input.attempt.allow[0]
