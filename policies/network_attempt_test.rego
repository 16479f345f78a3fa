package regate.network_test

import data.regate.network

# The attempt's own lists.

attempt_conn(host, allow, deny) := object.union(conn(host, 443), {"attempt": {"labels": {}, "allow": allow, "deny": deny}})

test_attempt_allow if {
	d := network.decision with input as attempt_conn("example.com", ["example.com"], [])
	d == {"allow": true, "reason": `allowed by the attempt's pattern "example.com"`, "rule": "attempt.allow:example.com"}
}

test_attempt_deny_beats_data_allow if {
	d := network.decision with input as attempt_conn("api.github.com", [], ["*.github.com"])
		with data.regate.allow as {"**.github.com": true}
	d == {"allow": false, "reason": `denied by the attempt's pattern "*.github.com"`, "rule": "attempt.deny:*.github.com"}
}

test_data_deny_beats_attempt_allow if {
	d := network.decision with input as attempt_conn("evil.test", ["evil.test"], [])
		with data.regate.deny as ["evil.test"]
	d.rule == "deny:evil.test"
}

test_data_allow_is_named_before_attempt_allow if {
	d := network.decision with input as attempt_conn("github.com", ["github.com"], [])
		with data.regate.allow as ["github.com"]
	d.rule == "allow:github.com"
}

test_attempt_lists_ignore_bare_star_in_deny if {
	d := network.decision with input as attempt_conn("github.com", ["github.com"], ["*"])
	d.allow
}

# data.regate.methods: plain HTTP only.

test_methods_refuse_other_plain_http_methods if {
	d := network.decision with input as plain("POST", "github.com")
		with data.regate.allow as ["github.com"]
		with data.regate.methods as ["GET", "HEAD", "OPTIONS"]
	d == {"allow": false, "reason": "method POST is not allowed for plain HTTP", "rule": "methods"}
}

test_methods_allow_listed_methods if {
	every m in ["GET", "HEAD", "OPTIONS"] {
		network.decision.allow with input as plain(m, "github.com")
			with data.regate.allow as ["github.com"]
			with data.regate.methods as ["get", "HEAD", "OPTIONS"]
	}
}

test_methods_do_not_affect_tunnels if {
	every scheme in ["https", "socks5"] {
		network.decision.allow with input as object.union(conn("github.com", 443), {"scheme": scheme})
			with data.regate.allow as ["github.com"]
			with data.regate.methods as ["GET"]
	}
}

test_deny_is_reported_before_methods if {
	d := network.decision with input as plain("POST", "evil.test")
		with data.regate.deny as ["evil.test"]
		with data.regate.methods as ["GET"]
	d.rule == "deny:evil.test"
}

test_methods_without_allow_still_default_deny if {
	d := network.decision with input as plain("GET", "github.com") with data.regate.methods as ["GET"]
	d.rule == "default"
}

test_empty_methods_restrict_nothing if {
	network.decision.allow with input as plain("DELETE", "github.com")
		with data.regate.allow as ["github.com"]
		with data.regate.methods as []
}
