// Package transparent is the source of the proxy pipeline for the TCP
// flows of an isolated command that ignores the proxy variables: the TUN
// link's user-space stack hands each flow over before its handshake, the
// fake-IP pool names its destination, and proxy.Handle decides, dials,
// answers (SYN-ACK or RST) and relays it like any tunnel.
package transparent

// Listener is the name of this source, as input.client.listener.
const Listener = "transparent"
