package proxy

import "time"

// Outcome is the one canonical record of a finished connection (of a
// request, for plain HTTP), denied or not.
type Outcome struct {
	DecisionID string
	AttemptID  string
	Host       string
	Port       int
	Scheme     string // "http", "https" (CONNECT) or "socks5"
	Method     string
	Listener   string // ListenerHTTP or ListenerSOCKS5
	Client     string // client address

	Allowed bool   // what was enforced, after the SSRF guard and TLS check
	Reason  string // the deciding reason
	Rule    string

	Upstream  string // the address dialed; "" when nothing was
	BytesUp   int64  // client → upstream
	BytesDown int64  // upstream → client
	Start     time.Time
	Duration  time.Duration
	Err       error // why the connection failed or was cut; nil when it ended cleanly
}
