package regate.network_test

# IP literals and CIDRs, IPv4 and IPv6.

test_ipv4_literal if {
	allows(["1.2.3.4"], "1.2.3.4", 443)
	denies(["1.2.3.4"], "1.2.3.5", 443)
	denies(["1.2.3.4"], "11.2.3.4", 443)
	allows(["1.2.3.4:8080"], "1.2.3.4", 8080)
	denies(["1.2.3.4:8080"], "1.2.3.4", 443)
}

test_ipv4_cidr_edges if {
	every host in ["10.0.0.0", "10.0.0.1", "10.128.7.9", "10.255.255.255"] {
		decide(["10.0.0.0/8"], [], host, 443).rule == "allow:10.0.0.0/8"
	}
	every host in ["9.255.255.255", "11.0.0.0", "110.0.0.1"] {
		denies(["10.0.0.0/8"], host, 443)
	}
}

test_ipv4_cidr_not_on_an_octet_boundary if {
	every host in ["172.16.0.0", "172.20.1.1", "172.31.255.255"] {
		allows(["172.16.0.0/12"], host, 443)
	}
	every host in ["172.15.255.255", "172.32.0.0"] {
		denies(["172.16.0.0/12"], host, 443)
	}
	allows(["192.168.1.128/25"], "192.168.1.255", 443)
	denies(["192.168.1.128/25"], "192.168.1.127", 443)
}

test_ipv4_adjacent_networks if {
	allows(["192.168.1.0/24"], "192.168.1.0", 443)
	allows(["192.168.1.0/24"], "192.168.1.255", 443)
	denies(["192.168.1.0/24"], "192.168.0.255", 443)
	denies(["192.168.1.0/24"], "192.168.2.0", 443)
}

test_ipv4_slash_32_and_slash_0 if {
	allows(["1.2.3.4/32"], "1.2.3.4", 443)
	denies(["1.2.3.4/32"], "1.2.3.5", 443)
	every host in ["0.0.0.0", "1.2.3.4", "255.255.255.255"] {
		allows(["0.0.0.0/0"], host, 443)
	}
	denies(["0.0.0.0/0"], "example.com", 443)
	denies(["0.0.0.0/0"], "2001:db8::1", 443)
}

test_ipv4_cidr_with_port if {
	allows(["10.0.0.0/8:443"], "10.1.2.3", 443)
	denies(["10.0.0.0/8:443"], "10.1.2.3", 80)
}

test_ipv4_cidr_deny if {
	d := decide(["*"], ["169.254.0.0/16"], "169.254.169.254", 80)
	d == {"allow": false, "reason": `denied by pattern "169.254.0.0/16"`, "rule": "deny:169.254.0.0/16"}
}

test_ipv4_host_does_not_match_domain_patterns if {
	denies(["*.3.4"], "1.2.3.4", 443)
	denies(["**.4"], "1.2.3.4", 443)
}

test_ipv6_literal if {
	allows(["2001:db8::1"], "2001:db8::1", 443)
	allows(["[2001:db8::1]"], "2001:db8::1", 443)
	denies(["2001:db8::1"], "2001:db8::2", 443)
	allows(["[::1]:8080"], "::1", 8080)
	denies(["[::1]:8080"], "::1", 8081)
}

test_ipv6_cidr if {
	every host in ["2001:db8::", "2001:db8::1", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"] {
		decide(["2001:db8::/32"], [], host, 443).rule == "allow:2001:db8::/32"
	}
	every host in ["2001:db9::", "2001:db7:ffff::1", "::1"] {
		denies(["2001:db8::/32"], host, 443)
	}
}

test_ipv6_cidr_not_on_a_group_boundary if {
	allows(["fe80::/10"], "fe80::1", 443)
	allows(["fe80::/10"], "febf:ffff::1", 443)
	denies(["fe80::/10"], "fec0::1", 443)
	allows(["fc00::/7"], "fd12:3456::1", 443)
	denies(["fc00::/7"], "fe00::1", 443)
	allows(["::/0"], "2001:db8::1", 443)
	denies(["::/0"], "1.2.3.4", 443)
}

test_ipv6_cidr_with_port if {
	allows(["[2001:db8::/32]:443"], "2001:db8::5", 443)
	denies(["[2001:db8::/32]:443"], "2001:db8::5", 80)
}

test_ipv4_mapped_ipv6_matches_ipv4_patterns if {
	d := decide(["*"], ["10.0.0.0/8"], "::ffff:10.1.2.3", 443)
	d.rule == "deny:10.0.0.0/8"
	decide(["*"], ["10.1.2.3"], "::ffff:10.1.2.3", 443).rule == "deny:10.1.2.3"
	decide(["*"], ["::ffff:10.1.2.3"], "::ffff:10.1.2.3", 443).rule == "deny:::ffff:10.1.2.3"
}
