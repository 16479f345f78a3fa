// Package fakedns answers the DNS queries of an isolated command with
// addresses from a private pool (198.18.0.0/15 and a ULA /64), so that each
// connection to such an address can be decided on the name it asked for; no
// query ever leaves the machine.
//
// The package is pure: [Pool] maps names to addresses and back, [Answer]
// turns one DNS query message into its response. Reading and writing the
// datagrams, and mapping a flow's destination back to its name, belong to
// the caller (ARCHITECTURE.md, Packages and imports: internal/isolate).
package fakedns
