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
candidates := patterns.candidates(input.host, input.port)

# The candidates without the bare "*", for deny collections.
deny_candidates := array.slice(candidates, 0, count(candidates) - 1)

# The candidates without "*:PORT" and "*": what a named host can match.
specific_candidates := array.slice(candidates, 0, count(candidates) - 2)

# data.regate.deny and .allow may hold 10,000 patterns, so they are looked
# up key by key by reference, never read whole: in object form one lookup
# per candidate; in list form (the probe [0] is defined only for a non-empty
# list) they are turned into a set, O(n), so big collections belong in
# object form, which is what regate writes.
deny := hits[0] if {
	_ = data.regate.deny[0]
	set := patterns.to_set(data.regate.deny)
	hits := [c | some c in deny_candidates; set[c]]
} else := hits[0] if {
	hits := [c | some c in deny_candidates; _ = data.regate.deny[c]]
}

allow := hits[0] if {
	_ = data.regate.allow[0]
	set := patterns.to_set(data.regate.allow)
	hits := [c | some c in candidates; set[c]]
} else := hits[0] if {
	hits := [c | some c in candidates; _ = data.regate.allow[c]]
}

# The attempt's lists are small; the common empty list costs one probe.
attempt_deny := patterns.first_hit(deny_candidates, input.attempt.deny) if _ = input.attempt.deny[0]

attempt_allow := patterns.first_hit(candidates, input.attempt.allow) if _ = input.attempt.allow[0]
