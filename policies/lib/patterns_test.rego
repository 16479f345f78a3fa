package regate.lib.patterns_test

import data.regate.lib.patterns

test_domain_candidates_most_specific_first if {
	patterns.candidates("a.b.example.com", 443) == [
		"a.b.example.com:443", "a.b.example.com", "**.a.b.example.com:443", "**.a.b.example.com",
		"*.b.example.com:443", "*.b.example.com", "**.b.example.com:443", "**.b.example.com",
		"*.example.com:443", "*.example.com", "**.example.com:443", "**.example.com",
		"*.com:443", "*.com", "**.com:443", "**.com",
		"*:443", "*",
	]
}

test_single_label_candidates if {
	patterns.candidates("localhost", 80) == ["localhost:80", "localhost", "**.localhost:80", "**.localhost", "*:80", "*"]
}

test_ipv4_candidates_are_the_33_networks if {
	c := patterns.candidates("192.168.77.130", 8080)
	count(c) == 70
	array.slice(c, 0, 6) == ["192.168.77.130:8080", "192.168.77.130", "192.168.77.130/32:8080", "192.168.77.130/32", "192.168.77.130/31:8080", "192.168.77.130/31"]
	every cidr in ["192.168.77.128/25", "192.168.77.0/24", "192.168.76.0/23", "192.168.64.0/19", "192.168.0.0/16", "192.160.0.0/12", "192.0.0.0/8", "128.0.0.0/1", "0.0.0.0/0"] {
		cidr in c
		concat(":", [cidr, "8080"]) in c
	}
	array.slice(c, 68, 70) == ["*:8080", "*"]
}

test_ipv4_networks_match_net_cidr_contains if {
	c := {x | some x in patterns.candidates("203.0.113.77", 1); contains(x, "/"); not contains(x, ":")}
	count(c) == 33
	every cidr in c {
		net.cidr_contains(cidr, "203.0.113.77")
		net.cidr_merge([cidr]) == {cidr}
	}
}

test_ipv6_candidates if {
	c := patterns.candidates("2001:db8::1", 443)
	array.slice(c, 0, 5) == ["[2001:db8::1]:443", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1/128]:443", "2001:db8::1/128"]
	count(c) == (3 + (2 * 129)) + 2
	every cidr in ["2001:db8::/32", "[2001:db8::/32]:443", "2001:db8::/127", "2000::/3", "::/0", "[::/0]:443"] {
		cidr in c
	}
}

test_ipv4_mapped_ipv6_candidates_include_ipv4 if {
	c := patterns.candidates("::ffff:10.1.2.3", 443)
	array.slice(c, 0, 5) == ["[::ffff:10.1.2.3]:443", "::ffff:10.1.2.3", "[::ffff:10.1.2.3]", "10.1.2.3:443", "10.1.2.3"]
	"10.0.0.0/8" in c
}

test_to_set if {
	patterns.to_set(["A.example", "b.example", 3]) == {"a.example", "b.example"}
	patterns.to_set({"A.example": true, "b.example": false}) == {"a.example", "b.example"}
	patterns.to_set([]) == set()
}

test_first_hit_is_the_most_specific if {
	cands := patterns.candidates("api.github.com", 443)
	every x in [["**.github.com", "api.github.com"], {"**.github.com": 1, "api.github.com": false}] {
		patterns.first_hit(cands, x) == "api.github.com"
	}
	not patterns.first_hit(cands, ["gitlab.com"])
	not patterns.first_hit(cands, {})
	not patterns.first_hit(cands, [])
}
