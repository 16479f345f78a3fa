package regate.network_test

# Domain patterns and ports.

test_exact_host if {
	allows(["example.com"], "example.com", 443)
	every host in ["a.example.com", "evilexample.com", "example.com.evil.test", "example.co"] {
		denies(["example.com"], host, 443)
	}
}

test_sub_domain_wildcard_excludes_apex if {
	every host in ["a.example.com", "a.b.c.example.com"] {
		allows(["*.example.com"], host, 443)
	}
	every host in ["example.com", "evilexample.com", "a.evilexample.com", "example.com.evil.test", "com"] {
		denies(["*.example.com"], host, 443)
	}
}

test_double_star_includes_apex if {
	every host in ["example.com", "a.example.com", "a.b.c.example.com"] {
		allows(["**.example.com"], host, 443)
	}
	every host in ["evilexample.com", "example.com.evil.test", "com"] {
		denies(["**.example.com"], host, 443)
	}
}

test_single_label_hosts if {
	allows(["localhost"], "localhost", 8080)
	denies(["*.localhost"], "localhost", 8080)
	allows(["**.localhost"], "localhost", 8080)
}

test_port_scoped_host if {
	allows(["github.com:22"], "github.com", 22)
	denies(["github.com:22"], "github.com", 443)
	denies(["github.com:22"], "api.github.com", 22)
}

test_port_scoped_wildcards if {
	allows(["*.example.com:443"], "a.example.com", 443)
	denies(["*.example.com:443"], "a.example.com", 80)
	denies(["*.example.com:443"], "example.com", 443)
	allows(["**.example.com:8443"], "example.com", 8443)
	denies(["**.example.com:8443"], "example.com", 443)
}

test_star_allows_everything if {
	every host in ["example.com", "a.b.test", "10.1.2.3", "2001:db8::1", "localhost"] {
		decide(["*"], [], host, 443).rule == "allow:*"
	}
}

test_star_with_port if {
	allows(["*:443"], "example.com", 443)
	allows(["*:443"], "10.1.2.3", 443)
	denies(["*:443"], "example.com", 80)
}

test_punycode_host if {
	allows(["**.xn--bcher-kva.example"], "www.xn--bcher-kva.example", 443)
	denies(["**.xn--bcher-kva.example"], "www.bucher.example", 443)
}

test_patterns_are_not_globs_or_regexes if {
	denies(["ex*ple.com"], "example.com", 443)
	denies(["example.c?m"], "example.com", 443)
	denies(["*example.com"], "evilexample.com", 443)
	denies([".*"], "example.com", 443)
}
