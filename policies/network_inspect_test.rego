package regate.network_test

import data.regate.network

# HTTPS inspection: data.regate.inspect marks tunnels; methods and path
# rules hold for the requests inside.

inner(method, host, path) := object.union(conn(host, 443), {
	"method": method, "path": path,
	"tls": {"sni": host, "inspected": true},
})

test_inspect_marks_allowed_tunnels if {
	d := network.decision with input as conn("github.test", 443)
		with data.regate.allow as ["github.test"]
		with data.regate.inspect as ["github.test"]
	d.allow
	d.inspect
}

test_inspect_only_its_hosts if {
	d := network.decision with input as conn("pypi.test", 443)
		with data.regate.allow as ["github.test", "pypi.test"]
		with data.regate.inspect as ["github.test"]
	d.allow
	not d.inspect
}

test_inspect_never_on_a_deny if {
	d := network.decision with input as conn("evil.test", 443)
		with data.regate.inspect as ["*"]
	not d.allow
	not d.inspect
}

test_methods_hold_inside_inspected_tunnels if {
	d := network.decision with input as inner("POST", "github.test", "/x")
		with data.regate.allow as ["github.test"]
		with data.regate.methods as ["GET", "HEAD"]
	d == {"allow": false, "reason": "method POST is not allowed for HTTPS requests", "rule": "methods"}
}

test_methods_do_not_touch_uninspected_tunnels if {
	network.decision.allow with input as conn("github.test", 443)
		with data.regate.allow as ["github.test"]
		with data.regate.methods as ["GET"]
}

test_inner_get_allowed_not_inspected_again if {
	d := network.decision with input as inner("GET", "github.test", "/x")
		with data.regate.allow as ["github.test"]
		with data.regate.inspect as ["github.test"]
		with data.regate.methods as ["GET"]
	d.allow
	not d.inspect
}

test_path_rules_allow_and_inspect_the_host if {
	d := network.decision with input as conn("github.test", 443)
		with data.regate.paths as {"github.test": ["/acme/**"]}
	d.allow
	d.inspect
	d.rule == "paths:github.test"
}

test_path_rules_allow_matching_paths if {
	network.decision.allow with input as inner("GET", "github.test", "/acme/repo.git/info/refs")
		with data.regate.paths as {"github.test": ["/acme/**"]}
}

test_path_rules_refuse_other_paths if {
	d := network.decision with input as inner("POST", "github.test", "/other/repo.git/git-receive-pack")
		with data.regate.paths as {"github.test": ["/acme/**"]}
	d == {"allow": false, "reason": "path /other/repo.git/git-receive-pack is not allowed on github.test", "rule": "paths"}
}

test_path_rules_hold_for_plain_http if {
	not network.decision.allow with input as object.union(plain("GET", "github.test"), {"path": "/other"})
		with data.regate.allow as ["github.test"]
		with data.regate.paths as {"github.test": ["/acme/*"]}
}

test_single_star_stays_in_its_segment if {
	not network.decision.allow with input as inner("GET", "github.test", "/acme/a/b")
		with data.regate.paths as {"github.test": ["/acme/*"]}
}

test_deny_wins_over_path_rules if {
	not network.decision.allow with input as inner("GET", "github.test", "/acme/x")
		with data.regate.paths as {"github.test": ["/acme/**"]}
		with data.regate.deny as ["github.test"]
}
