package regate.network_test

import data.regate.network

# Secrets: a placeholder (input.secrets) is allowed only to the hosts its
# secret is bound to (data.regate.secrets).

request_with(host, secrets) := object.union(inner("GET", host, "/"), {"secrets": secrets})

bindings := {"github": ["api.github.test", "*.githubusercontent.test"], "npm": ["registry.npm.test"]}

test_placeholder_to_its_host_is_allowed if {
	d := network.decision with input as request_with("api.github.test", ["github"])
		with data.regate.allow as ["*"]
		with data.regate.secrets as bindings
	d.allow
}

test_placeholder_to_a_sub_domain_pattern if {
	d := network.decision with input as request_with("raw.githubusercontent.test", ["github"])
		with data.regate.allow as ["*"]
		with data.regate.secrets as bindings
	d.allow
}

test_placeholder_elsewhere_is_denied if {
	d := network.decision with input as request_with("evil.test", ["github"])
		with data.regate.allow as ["*"]
		with data.regate.secrets as bindings
	d == {"allow": false, "reason": "the request carries the placeholder of secret github, which is not for evil.test", "rule": "secrets"}
}

test_other_secrets_placeholder_on_a_bound_host_is_denied if {
	d := network.decision with input as request_with("api.github.test", ["github", "npm"])
		with data.regate.allow as ["*"]
		with data.regate.secrets as bindings
	d.rule == "secrets"
	contains(d.reason, "secret npm")
	not contains(d.reason, "github,")
}

test_unknown_secret_is_denied if {
	d := network.decision with input as request_with("api.github.test", ["nosuch"])
		with data.regate.allow as ["*"]
		with data.regate.secrets as bindings
	d.rule == "secrets"
}

test_bare_star_binds_nothing if {
	d := network.decision with input as request_with("evil.test", ["github"])
		with data.regate.allow as ["*"]
		with data.regate.secrets as {"github": ["*"]}
	d.rule == "secrets"
}

test_no_secrets_no_change if {
	d := network.decision with input as inner("GET", "evil.test", "/")
		with data.regate.allow as ["*"]
		with data.regate.secrets as bindings
	d.allow
}
