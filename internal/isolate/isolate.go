// Package isolate puts the command of `regate run --isolate` in its own
// user, network, mount and PID namespaces, so that the proxy is the only
// way out of it (Linux only). regate re-executes itself as the namespace's
// init (init_linux.go), which sets the namespace up, creates the proxy
// listeners inside and passes them out (SCM_RIGHTS), then starts the
// command through a last stage that drops every privilege (confine).
package isolate

import (
	"net"
	"net/netip"
	"os"
)

// Spec is what a sandbox is built with.
type Spec struct {
	// Self is the regate binary, re-executed as the init.
	Self string
	// Listeners is how many TCP listeners on 127.0.0.1 the init creates
	// inside and passes out (the proxy's HTTP and SOCKS5).
	Listeners int
	// ReadOnly are files and directories bound read-only over themselves:
	// what regate reads as policy or configuration.
	ReadOnly []string
	// Hide are paths made empty inside: an empty directory over a
	// directory, /dev/null over anything else. Missing ones are skipped.
	Hide []string
	// User is who the command runs as; nil: the caller's own uid and gid.
	User *User
	// Transparent asks for the link (regate0) as well: every other
	// destination routes to it, and DNS goes to DNSAddr on it.
	Transparent bool
}

// Link is the link of transparent isolation as regate holds it: the
// outer end of regate0.
type Link struct {
	// File is the TUN device (IP packets); or, for callers that cannot
	// open /dev/net/tun, an AF_PACKET socket on the outer end of a veth
	// pair (ethernet frames), which lives in a second network namespace
	// of the sandbox's own.
	File *os.File
	// Ethernet is set for the veth pair.
	Ethernet *Ethernet
	// MTU is the link's MTU (both ends).
	MTU uint32
}

// Ethernet is what a stack on the veth's outer end needs: its own MAC
// (the command's kernel sends every frame to it, through permanent
// neighbour entries of its gateways) and the command's end, where the
// command's addresses are.
type Ethernet struct {
	Own, Peer net.HardwareAddr
	PeerAddrs []netip.Addr
}

// Kinds of link (readyMsg.Link).
const (
	linkTUN  = "tun"
	linkVeth = "veth"
)

// User is a uid and gid to run the command as.
type User struct{ UID, GID int }

// Messages of the control socket between regate and its init.
type (
	// setupMsg is regate's first message: the Spec's parts the init needs.
	setupMsg struct {
		Listeners int      `json:"listeners"`
		ReadOnly  []string `json:"read_only"`
		Hide      []string `json:"hide"`
		UID       int      `json:"uid"`
		GID       int      `json:"gid"`
		TUN       bool     `json:"tun"`
		SetGroups bool     `json:"set_groups"`
	}
	// readyMsg is the init's answer; the listeners' fds ride along.
	readyMsg struct {
		Addrs []string `json:"addrs,omitempty"`
		Error string   `json:"error,omitempty"`
		// Link is the kind of link made, linkTUN or linkVeth (its fd
		// follows the listeners'); LinkError says why none was.
		Link      string `json:"link,omitempty"`
		LinkError string `json:"link_error,omitempty"`
	}
	// execMsg is regate's second message: the command to start.
	execMsg struct {
		Path string   `json:"path"`
		Argv []string `json:"argv"`
		Env  []string `json:"env"`
	}
)

// Hidden subcommands of the regate binary that this package implements.
const (
	InitArg = "__isolate-init" // the namespace's init
	ExecArg = "__isolate-exec" // the last stage before the command
)

// DefaultHidden are the sockets and directories that would be a way out
// of any sandbox: container engines and the session and system buses.
var DefaultHidden = []string{
	"/var/run/docker.sock", "/run/docker.sock", "/run/containerd", "/run/podman",
	"/run/dbus/system_bus_socket", "/var/run/dbus/system_bus_socket",
}
