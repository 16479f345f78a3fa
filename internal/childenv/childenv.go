// Package childenv builds the environment a sandboxed child needs to send
// every connection through regate's proxy: the proxy variables that most
// tools read, and the tool-specific ones for those that read their own.
// `regate run` and the admin API's POST /v1/attempts return the same set.
package childenv

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// Kind is what a proxy listener speaks, and so which variables point at
// it.
type Kind int

// Listener kinds.
const (
	HTTP   Kind = iota + 1 // HTTP_PROXY, HTTPS_PROXY, ALL_PROXY and the tools' own
	SOCKS5                 // REGATE_SOCKS_PROXY (socks5h://)
)

// SOCKSVar names the SOCKS5 listener's URL. ALL_PROXY is not it: httpx
// (and the many SDKs built on it) refuses a socks5h:// ALL_PROXY, and any
// socks5:// one without the optional socksio package, when a client is
// created, so every request of such a program would fail; ALL_PROXY names
// the HTTP proxy instead, which every client that reads it speaks.
const SOCKSVar = "REGATE_SOCKS_PROXY"

// Listener is a proxy listener the child's variables point at.
type Listener struct {
	Kind Kind
	Addr string
}

// Env returns the variables, as KEY=VALUE, for a child of the attempt
// attemptID (token its secret) whose proxies listen at ls. self is the path
// of the regate binary, used as git's SSH ProxyCommand ("" leaves
// GIT_SSH_COMMAND unset).
func Env(ls []Listener, attemptID, token, self string) []string {
	user := url.UserPassword(attemptID, token)
	env := []string{"REGATE_ATTEMPT_ID=" + attemptID}
	for _, l := range ls {
		switch l.Kind {
		case HTTP:
			env = append(env, httpVars((&url.URL{Scheme: "http", User: user, Host: l.Addr}).String(), l.Addr)...)
		case SOCKS5:
			env = append(env, SOCKSVar+"="+(&url.URL{Scheme: "socks5h", User: user, Host: l.Addr}).String())
		}
	}
	if self != "" {
		env = append(env, "GIT_SSH_COMMAND="+GitSSHCommand("", self))
	}
	return env
}

// GitSSHCommand is the ssh command git runs under regate: the user's own
// (user, a shell command line as GIT_SSH_COMMAND or core.sshCommand hold
// it; "" is plain ssh) with regate's ProxyCommand option added at the end,
// so the user's key, known-hosts and other options stay. git adds its own
// arguments after it. ssh takes the first value of an option: a
// ProxyCommand or ProxyJump of the user's own command wins over regate's
// (HasOwnProxy), ones in ssh_config do not.
func GitSSHCommand(user, self string) string {
	if strings.TrimSpace(user) == "" {
		user = "ssh"
	}
	return user + " -o " + ShellQuote("ProxyCommand="+ShellQuote(self)+" connect %h %p")
}

// HasOwnProxy reports whether an ssh command line sets its own
// ProxyCommand or ProxyJump (-J), which ssh would prefer to regate's.
func HasOwnProxy(sshCommand string) bool {
	lower := strings.ToLower(sshCommand)
	if strings.Contains(lower, "proxycommand") || strings.Contains(lower, "proxyjump") {
		return true
	}
	return slices.ContainsFunc(strings.Fields(sshCommand), jumpFlag.MatchString)
}

// jumpFlag is ssh's -J, alone or after other single-letter flags (-vJ).
var jumpFlag = regexp.MustCompile(`^-[A-Za-z0-9]*J`)

// httpVars point the variables most tools read at the HTTP proxy.
func httpVars(httpURL, httpAddr string) []string {
	return []string{
		"HTTP_PROXY=" + httpURL,
		"HTTPS_PROXY=" + httpURL,
		"http_proxy=" + httpURL,
		"https_proxy=" + httpURL,
		"ALL_PROXY=" + httpURL,
		"all_proxy=" + httpURL,
		// Empty, not unset: loopback and private names go through the
		// policy too.
		"NO_PROXY=",
		"no_proxy=",
		"npm_config_proxy=" + httpURL,
		"npm_config_https_proxy=" + httpURL,
		"YARN_HTTP_PROXY=" + httpURL,
		"YARN_HTTPS_PROXY=" + httpURL,
		"PIP_PROXY=" + httpURL,
		"BUNDLE_HTTP_PROXY=" + httpURL,
		"BUNDLE_HTTPS_PROXY=" + httpURL,
		"DOCKER_HTTP_PROXY=" + httpURL,
		"DOCKER_HTTPS_PROXY=" + httpURL,
		"NODE_USE_ENV_PROXY=1",
		"JAVA_TOOL_OPTIONS=" + javaOptions(httpAddr),
	}
}

// javaOptions points the JVM's HTTP and HTTPS proxy at the listener. The
// JVM sends no proxy credentials; the listener of `regate run` is bound to
// the attempt, so it needs none. nonProxyHosts is emptied so that loopback
// goes through the policy, as with NO_PROXY.
func javaOptions(httpAddr string) string {
	host, port, err := net.SplitHostPort(httpAddr)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("-Dhttp.proxyHost=%[1]s -Dhttp.proxyPort=%[2]s -Dhttps.proxyHost=%[1]s -Dhttps.proxyPort=%[2]s -Dhttp.nonProxyHosts=", host, port)
}

// Merge returns base with every variable of add set (replacing base's
// value). JAVA_TOOL_OPTIONS is appended to, so the user's own JVM options
// survive and the proxy properties, coming last, win.
func Merge(base, add []string) []string {
	out := make([]string, 0, len(base)+len(add))
	at := map[string]int{}
	put := func(kv string, appendJava bool) {
		key, val, _ := strings.Cut(kv, "=")
		i, ok := at[key]
		if !ok {
			at[key] = len(out)
			out = append(out, kv)
			return
		}
		if old := strings.TrimPrefix(out[i], key+"="); appendJava && key == "JAVA_TOOL_OPTIONS" && old != "" {
			val = old + " " + val
		}
		out[i] = key + "=" + val
	}
	for _, kv := range base {
		put(kv, false)
	}
	for _, kv := range add {
		put(kv, true)
	}
	return out
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
