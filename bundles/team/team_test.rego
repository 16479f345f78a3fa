package regate.team.team_test

import data.regate.team

conn(host, port, labels) := {
	"host": host, "port": port, "scheme": "https", "method": "CONNECT",
	"attempt_id": "a1", "host_is_ip": false,
	"attempt": {"labels": labels, "allow": [], "deny": []},
}

test_release_uploads_need_the_release_label if {
	team.grants == {"release-uploads"} with input as conn("upload.pypi.org", 443, {"job": "release"})
	count(team.grants) == 0 with input as conn("upload.pypi.org", 443, {"job": "test"})
	count(team.grants) == 0 with input as conn("upload.pypi.org", 443, {})
}

test_release_uploads_only_their_hosts_and_port if {
	count(team.grants) == 0 with input as conn("upload.pypi.org", 80, {"job": "release"})
	count(team.grants) == 0 with input as conn("evil.test", 443, {"job": "release"})
	count(team.grants) == 0 with input as conn("upload.pypi.org.evil.test", 443, {"job": "release"})
}

test_staging_api_needs_a_ticket if {
	team.grants == {"staging-api"} with input as conn("staging-api.payments.example.com", 8443, {"ticket": "PAY-1234"})
	count(team.grants) == 0 with input as conn("staging-api.payments.example.com", 8443, {"ticket": "OPS-1"})
	count(team.grants) == 0 with input as conn("staging-api.payments.example.com", 8443, {})
	count(team.grants) == 0 with input as conn("staging-api.payments.example.com", 443, {"ticket": "PAY-1234"})
}

test_grants_survive_a_sparse_input if {
	count(team.grants) == 0 with input as {"host": "upload.pypi.org"}
}

# The team's lists are patterns as the org policy matches them: lower case,
# and never a catch-all (the org ignores those).
test_team_lists_are_well_formed if {
	every p in array.concat(data.regate.team.allow, data.regate.team.deny) {
		is_string(p)
		p == lower(p)
		not p in {"*", "*:443", "*:80"}
	}
}
