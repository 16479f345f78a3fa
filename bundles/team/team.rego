# Package team holds one team's additions to the org policy
# (bundles/org): its allow and deny lists in data.json, and grants, rules
# that allow a connection on conditions the lists cannot express, such as
# the labels the attempt was registered with. The org policy decides; an
# org deny always wins over anything here.
package regate.team

# grants names every team rule that allows this connection.
grants contains "release-uploads" if {
	input.attempt.labels.job == "release"
	input.port == 443
	input.host in {"upload.pypi.org", "uploads.github.com", "registry.npmjs.org"}
}

# Attempts registered for a ticket may reach the team's staging API.
grants contains "staging-api" if {
	startswith(input.attempt.labels.ticket, "PAY-")
	input.host == "staging-api.payments.example.com"
	input.port == 8443
}
