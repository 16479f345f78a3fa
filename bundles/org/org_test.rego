package regate.org.org_test

import data.regate.network

conn(host, port) := {
	"host": host, "port": port, "scheme": "https", "method": "CONNECT",
	"attempt_id": "a1", "host_is_ip": false,
	"attempt": {"labels": {}, "allow": [], "deny": []},
}

# decide(req, team): the decision with the team bundle's data and grants
# replaced by team, so these tests hold with or without bundles/team loaded.
decide(req, team) := d if {
	d := network.decision with input as req
		with data.regate.team.allow as object.get(team, "allow", [])
		with data.regate.team.deny as object.get(team, "deny", [])
		with data.regate.team.grants as object.get(team, "grants", set())
}

test_org_deny_beats_every_allow if {
	req := object.union(conn("metadata.google.internal", 80), {"attempt": {"labels": {}, "allow": ["metadata.google.internal"], "deny": []}})
	d := decide(req, {"allow": ["metadata.google.internal"], "grants": {"x"}}) with data.regate.allow as ["metadata.google.internal"]
	d == {"allow": false, "reason": `denied by org pattern "metadata.google.internal"`, "rule": "org.deny:metadata.google.internal"}
}

test_metadata_addresses_are_denied if {
	decide(conn("169.254.169.254", 80), {}).rule == "org.deny:169.254.0.0/16"
	decide(conn("::ffff:169.254.169.254", 80), {}).rule == "org.deny:169.254.0.0/16"
	decide(conn("fd00:ec2::254", 80), {}).rule == "org.deny:fd00:ec2::254"
}

test_exfil_services_and_smtp_are_denied if {
	decide(conn("abc.ngrok.io", 443), {"allow": ["**.ngrok.io"]}).rule == "org.deny:**.ngrok.io"
	decide(conn("smtp.example.com", 25), {"allow": ["smtp.example.com"]}).rule == "org.deny:*:25"
}

test_org_allow if {
	decide(conn("api.github.com", 443), {}) == {"allow": true, "reason": `allowed by org pattern "**.github.com"`, "rule": "org.allow:**.github.com"}
}

test_team_deny_beats_org_allow if {
	decide(conn("api.github.com", 443), {"deny": ["api.github.com"]}).rule == "team.deny:api.github.com"
}

test_team_allow if {
	decide(conn("api.stripe.com", 443), {"allow": ["**.stripe.com"]}) == {"allow": true, "reason": `allowed by team pattern "**.stripe.com"`, "rule": "team.allow:**.stripe.com"}
	decide(conn("api.stripe.com", 443), {"allow": {"**.stripe.com": true}}).rule == "team.allow:**.stripe.com"
}

test_team_cannot_allow_everything if {
	every catch_all in ["*", "*:443"] {
		decide(conn("evil.test", 443), {"allow": [catch_all]}).rule == "default"
	}
}

test_team_grant if {
	decide(conn("upload.pypi.org", 443), {"grants": {"release-uploads"}}) == {"allow": true, "reason": `allowed by team rule "release-uploads"`, "rule": "team.rule:release-uploads"}
}

test_local_allow_only_while_trusted if {
	decide(conn("example.com", 443), {}).rule == "allow:example.com" with data.regate.allow as {"example.com": true}
	decide(conn("example.com", 443), {}).rule == "default" with data.regate.allow as {"example.com": true}
		with data.regate.org.trust_local_allow as false
	req := object.union(conn("example.com", 443), {"attempt": {"labels": {}, "allow": ["example.com"], "deny": []}})
	decide(req, {}).rule == "attempt.allow:example.com"
	decide(req, {}).rule == "default" with data.regate.org.trust_local_allow as false
}

test_local_and_attempt_denies_always_apply if {
	decide(conn("api.github.com", 443), {}).rule == "deny:api.github.com" with data.regate.deny as ["api.github.com"]
	req := object.union(conn("api.github.com", 443), {"attempt": {"labels": {}, "allow": [], "deny": ["**.github.com"]}})
	decide(req, {}).rule == "attempt.deny:**.github.com"
}

test_methods if {
	req := object.union(conn("api.github.com", 80), {"scheme": "http", "method": "POST", "path": "/"})
	decide(req, {}).rule == "org.allow:**.github.com"
	decide(req, {}) == {"allow": false, "reason": "method POST is not allowed for plain HTTP", "rule": "methods"} with data.regate.org.methods as ["GET"]
	decide(req, {}).rule == "methods" with data.regate.methods as ["GET"]
	decide(conn("api.github.com", 443), {}).allow with data.regate.org.methods as ["GET"]
	decide(req, {}).allow with data.regate.methods as []
}

test_default_deny if {
	decide(conn("evil.test", 443), {}) == {"allow": false, "reason": "no rule allows evil.test", "rule": "default"}
	network.decision.rule == "default" with input as {}
}

# The bundle's own data: lower-case patterns, and nothing both denied and
# allowed (the deny would silently win).
test_org_lists_are_well_formed if {
	every p in array.concat(data.regate.org.deny, data.regate.org.allow) {
		p == lower(p)
	}
	count({p | some p in data.regate.org.deny} & {p | some p in data.regate.org.allow}) == 0
}
