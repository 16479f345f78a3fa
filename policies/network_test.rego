package regate.network_test

import data.regate.network

# Helpers shared by the network tests.

conn(host, port) := {
	"host": host, "port": port, "scheme": "https", "method": "CONNECT",
	"attempt_id": "", "host_is_ip": false,
	"attempt": {"labels": {}, "allow": [], "deny": []},
}

plain(method, host) := object.union(conn(host, 80), {"scheme": "http", "method": method, "path": "/"})

# decide(allow, deny, host, port): the decision for a CONNECT to host:port.
decide(allow, deny, host, port) := d if {
	d := network.decision with input as conn(host, port)
		with data.regate.allow as allow
		with data.regate.deny as deny
}

allows(allow, host, port) if decide(allow, {}, host, port).allow

denies(allow, host, port) if not decide(allow, {}, host, port).allow

# The order, the reasons and the rule names.

test_empty_data_denies_with_no_rule_allows if {
	network.decision == {"allow": false, "reason": "no rule allows evil.test", "rule": "default"} with input as conn("evil.test", 443)
}

test_missing_input_still_decides_deny if {
	network.decision == {"allow": false, "reason": "no rule allows the destination", "rule": "default"} with input as {}
}

test_allow_reason_and_rule if {
	decide(["**.github.com"], [], "api.github.com", 443) == {
		"allow": true,
		"reason": `allowed by pattern "**.github.com"`,
		"rule": "allow:**.github.com",
	}
}

test_deny_beats_allow if {
	decide(["**.github.com"], ["gist.github.com"], "gist.github.com", 443) == {
		"allow": false,
		"reason": `denied by pattern "gist.github.com"`,
		"rule": "deny:gist.github.com",
	}
	decide(["**.github.com"], ["gist.github.com"], "api.github.com", 443).allow
}

test_most_specific_pattern_is_named if {
	decide(["**.github.com", "api.github.com", "*"], [], "api.github.com", 443).rule == "allow:api.github.com"
	decide(["*.github.com", "**.github.com"], [], "a.api.github.com", 443).rule == "allow:*.github.com"
	decide(["*", "*:443"], [], "x.test", 443).rule == "allow:*:443"
}

test_bare_star_is_ignored_in_deny_lists if {
	decide(["github.com"], ["*"], "github.com", 443).allow
}

test_star_port_is_honoured_in_deny_lists if {
	d := decide(["*"], ["*:25"], "mail.example.com", 25)
	d.rule == "deny:*:25"
	not d.allow
	decide(["*"], ["*:25"], "mail.example.com", 587).allow
}

test_list_and_object_forms_agree if {
	every allow in [["github.com"], {"github.com": true}, {"github.com": false}, {"github.com": null}, {"github.com": {}}] {
		decide(allow, [], "github.com", 443).rule == "allow:github.com"
		not decide(allow, [], "api.github.com", 443).allow
	}
	every deny in [["github.com"], {"github.com": true}, {"github.com": false}] {
		decide(["*"], deny, "github.com", 443).rule == "deny:github.com"
		decide(["*"], deny, "api.github.com", 443).allow
	}
}

test_list_form_is_lower_cased if {
	decide(["GitHub.com"], [], "github.com", 443).rule == "allow:github.com"
}

test_non_pattern_data_is_harmless if {
	every junk in [null, 42, "github.com", [], {}, [42, null]] {
		decide(junk, junk, "github.com", 443).rule == "default"
	}
}
