#!/usr/bin/env bash
# .opa-test.sh runs the genuine OPA CLI, of the version go.mod requires, over
# the default policy (policies/) and the example bundles (bundles/): format,
# strict compile checks, unit tests, bundle builds and a few decisions with
# the org and team bundles loaded together. It runs every step, prints a
# summary line and exits non-zero if any step failed.
#
# The opa binary is the one on PATH if its version matches, else one built
# once with `go install` into ${XDG_CACHE_HOME:-$HOME/.cache}/regate/.
set -uo pipefail

cd "$(dirname "$0")" || exit 2

version=$(go list -m -f '{{.Version}}' github.com/open-policy-agent/opa 2>/dev/null) ||
	version=$(awk '$1 == "github.com/open-policy-agent/opa" { print $2 }' go.mod)
if [[ -z "$version" ]]; then
	echo "opa-test: cannot read the OPA version from go.mod" >&2
	exit 2
fi

# opa_version BIN prints the version BIN reports, e.g. v1.22.3.
opa_version() { "$1" version 2>/dev/null | awk '$1 == "Version:" { print "v" $2 }'; }

find_opa() {
	local bin
	if bin=$(command -v opa) && [[ "$(opa_version "$bin")" == "$version" ]]; then
		echo "$bin"
		return
	fi
	local dir="${XDG_CACHE_HOME:-$HOME/.cache}/regate/opa-$version"
	if [[ "$(opa_version "$dir/opa")" != "$version" ]]; then
		echo "opa-test: building opa $version into $dir (once)" >&2
		local tmp
		tmp=$(mktemp -d) || return 1
		# GOFLAGS may carry -mod=..., which `go install pkg@version` rejects.
		if ! env -u GOFLAGS GOBIN="$tmp" go install "github.com/open-policy-agent/opa@$version" >&2; then
			rm -rf "$tmp"
			return 1
		fi
		mkdir -p "$dir" && mv -f "$tmp/opa" "$dir/opa" && rm -rf "$tmp" || return 1
	fi
	echo "$dir/opa"
}

if ! OPA=$(find_opa) || [[ -z "$OPA" ]]; then
	echo "opa-test: no opa $version available" >&2
	exit 2
fi
echo "opa-test: using $OPA ($version)"

passed=0
failed=0
failures=()

# step NAME CMD...: run one check, record its outcome.
step() {
	local name=$1
	shift
	echo "--- $name"
	if "$@"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		failures+=("$name")
		echo "--- FAILED: $name"
	fi
}

lib=(-b policies/lib)
org=(-b policies/lib -b bundles/org)
team=(-b bundles/team)
all=(-b policies/lib -b bundles/org -b bundles/team)

step "opa fmt" "$OPA" fmt --fail -l policies bundles
step "opa check policies" "$OPA" check --strict policies
step "opa check bundles (roots)" "$OPA" check --strict "${all[@]}"
step "opa test policies" "$OPA" test --fail-on-empty -v policies
step "opa test lib bundle" "$OPA" test --fail-on-empty -v "${lib[@]}"
step "opa test org bundle" "$OPA" test --fail-on-empty -v "${org[@]}"
step "opa test team bundle" "$OPA" test --fail-on-empty -v "${team[@]}"
step "opa test org+team bundles" "$OPA" test --fail-on-empty -v "${all[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# build_bundles: the artifacts bundles/README.md describes, tests left out.
build_bundles() {
	"$OPA" build "${org[@]}" --ignore '*_test.rego' -r org-test -o "$work/org.tar.gz" &&
		"$OPA" build "${team[@]}" --ignore '*_test.rego' -r team-test -o "$work/team.tar.gz"
}
step "opa build bundles" build_bundles

# expect RULE INPUT BUNDLE_ARGS...: the decision's rule for INPUT must be RULE.
expect() {
	local want=$1 in=$2 got
	shift 2
	got=$("$OPA" eval "$@" -I -f raw 'data.regate.network.decision.rule' <<<"$in") || return 1
	if [[ "$got" != "$want" ]]; then
		echo "decision for $in: rule $got, want $want" >&2
		return 1
	fi
}

conn() { # conn HOST PORT [LABELS]
	printf '{"host":"%s","port":%s,"scheme":"https","method":"CONNECT","attempt_id":"a1","host_is_ip":false,"attempt":{"labels":%s,"allow":[],"deny":[]}}' \
		"$1" "$2" "${3:-{\}}"
}

# decisions_together: org and team loaded together, as directories and as
# the built artifacts, decide as the bundles' tests say they should.
decisions_together() {
	local set
	for set in "${all[*]}" "-b $work/org.tar.gz -b $work/team.tar.gz"; do
		# shellcheck disable=SC2086 # $set is a list of flags
		expect "org.allow:**.github.com" "$(conn api.github.com 443)" $set &&
			expect "team.allow:**.stripe.com" "$(conn api.stripe.com 443)" $set &&
			expect "team.deny:**.facebook.com" "$(conn www.facebook.com 443)" $set &&
			expect "team.rule:release-uploads" "$(conn upload.pypi.org 443 '{"job":"release"}')" $set &&
			expect "org.deny:169.254.0.0/16" "$(conn 169.254.169.254 80)" $set &&
			expect "default" "$(conn evil.test 443)" $set || return 1
	done
}
step "org+team decisions" decisions_together

echo
if ((failed > 0)); then
	printf 'opa-test: failed: %s\n' "${failures[@]}"
fi
echo "opa-test: $passed passed, $failed failed"
((failed == 0))
