# Package patterns turns a destination into the pattern keys that could match
# it, most specific first. A policy looks each key up in an object keyed by
# pattern (data.regate.allow[key]) instead of scanning the patterns, so a
# decision costs O(labels of the host), not O(number of patterns).
#
# Pattern syntax (matched as text against regate's normalised host):
#
#   example.com           that host only
#   *.example.com         any sub-domain at any depth, not example.com itself
#   **.example.com        example.com and any sub-domain
#   *                     everything
#   1.2.3.4, 2001:db8::1  an IP literal, in canonical text (as Go prints it)
#   10.0.0.0/8            a CIDR: canonical network address and prefix length
#   PATTERN:PORT          the same, on that port only: github.com:22,
#                         *.example.com:443, *:443, 10.0.0.0/8:443; an IPv6
#                         address or CIDR is bracketed when a port follows:
#                         [2001:db8::1]:443, [2001:db8::/32]:443
#
# Patterns are lower case; IPv6 ones may also be written bracketed without a
# port ([2001:db8::1]). An IPv4-mapped IPv6 host (::ffff:1.2.3.4) matches
# its own text and the IPv4 patterns of 1.2.3.4.
package regate.lib.patterns

# candidates(host, port) is the array of every pattern that matches host on
# port, most specific first, always ending with "*:PORT", "*". host is
# lower case without trailing dot: a name, a dotted-quad IPv4 or an
# unbracketed IPv6 address; port is a number.
candidates(host, port) := _ipv6(host, format_int(port, 10)) if {
	contains(host, ":")
} else := _ipv4(host, format_int(port, 10)) if {
	regex.match(`^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$`, host)
} else := _domain(host, format_int(port, 10))

# first_hit(cands, x) is the first of the candidates cands (so the most
# specific) that is a pattern of x, a list or an object keyed by pattern
# (any value); undefined if there is none. x is passed as a value: cheap for
# small collections and in regate, whose store keeps data as AST values,
# but a store that converts data on read (plain OPA's default) converts all
# of x first. For a big collection in data, look each candidate up by
# reference instead (data.x[c]), as hits.rego does for data.regate.*.
first_hit(cands, x) := hits[0] if {
	is_object(x)
	hits := [c | some c in cands; _ = x[c]]
} else := hits[0] if {
	set := to_set(x)
	hits := [c | some c in cands; set[c]]
}

# to_set(x) turns a list of patterns (or the keys of an object) into a set,
# lower-cased: O(n).
to_set(x) := {lower(k) | some k, _ in x; is_string(k)} if {
	is_object(x)
} else := {lower(p) | some p in x; is_string(p)}

# The host itself, then "*.S" and "**.S" for every proper suffix S of it,
# longest first, each with the port before without; built as one string and
# split once, which is cheaper in Rego than assembling arrays.
_domain(host, port) := split(text, ",") if {
	head := [host, ":", port, ",", host, ",**.", host, ":", port, ",**.", host]
	subs := [concat("", [",*.", s, ":", port, ",*.", s, ",**.", s, ":", port, ",**.", s]) |
		some i in indexof_n(host, ".")
		s := substring(host, i + 1, -1)
	]
	text := concat("", array.concat(head, array.concat(subs, [",*:", port, ",*"])))
}

_ipv4(host, port) := split(text, ",") if {
	text := concat("", [host, ":", port, ",", host, ",", _ipv4_cidrs(host, port), ",*:", port, ",*"])
}

# _ipv4_cidrs(host, port) is "N/p:PORT,N/p,..." for p = 32 down to 0, where N
# is the network address of host/p: the octets before the one p cuts are
# kept, that octet is masked and the ones after it are zero. The constant
# table _ipv4_rows saves computing masks and suffixes per query.
_ipv4_cidrs(host, port) := concat(",", array.concat([concat("", [host, "/32:", port, ",", host, "/32"])], [c |
	o := split(host, ".")
	n := [to_number(o[0]), to_number(o[1]), to_number(o[2]), to_number(o[3])]
	kept := ["", concat("", [o[0], "."]), concat("", [o[0], ".", o[1], "."]), concat("", [o[0], ".", o[1], ".", o[2], "."])]
	some row in _ipv4_rows
	cidr := concat("", [kept[row[0]], format_int(bits.and(n[row[0]], row[1]), 10), row[2]])
	c := concat("", [cidr, ":", port, ",", cidr])
]))

# [octet k, mask for it, zero octets after it and "/p"] for p = 31 down to 0.
_ipv4_rows := [
	[3, 254, "/31"], [3, 252, "/30"], [3, 248, "/29"], [3, 240, "/28"], [3, 224, "/27"], [3, 192, "/26"], [3, 128, "/25"], [3, 0, "/24"],
	[2, 254, ".0/23"], [2, 252, ".0/22"], [2, 248, ".0/21"], [2, 240, ".0/20"], [2, 224, ".0/19"], [2, 192, ".0/18"], [2, 128, ".0/17"], [2, 0, ".0/16"],
	[1, 254, ".0.0/15"], [1, 252, ".0.0/14"], [1, 248, ".0.0/13"], [1, 240, ".0.0/12"], [1, 224, ".0.0/11"], [1, 192, ".0.0/10"], [1, 128, ".0.0/9"], [1, 0, ".0.0/8"],
	[0, 254, ".0.0.0/7"], [0, 252, ".0.0.0/6"], [0, 248, ".0.0.0/5"], [0, 240, ".0.0.0/4"], [0, 224, ".0.0.0/3"], [0, 192, ".0.0.0/2"], [0, 128, ".0.0.0/1"], [0, 0, ".0.0.0/0"],
]

# IPv6 has 129 prefix lengths and Rego no cheap way to print an address, so
# net.cidr_merge renders each network in Go's canonical form: 2 x 129
# candidate lookups (about a millisecond), but never a scan of the patterns.
_ipv6(host, port) := array.concat(
	array.concat([concat("", ["[", host, "]:", port]), host, concat("", ["[", host, "]"])], _ipv6_cidrs(host, port)),
	[concat(":", ["*", port]), "*"],
)

_ipv6_cidrs(host, port) := split(concat("", [v4, ":", port, ",", v4, ",", _ipv4_cidrs(v4, port)]), ",") if {
	startswith(host, "::ffff:")
	v4 := substring(host, 7, -1)
	contains(v4, ".")
} else := [c |
	some p in numbers.range(128, 0)
	some cidr in net.cidr_merge([concat("/", [host, format_int(p, 10)])])
	some c in [concat("", ["[", cidr, "]:", port]), cidr]
]
