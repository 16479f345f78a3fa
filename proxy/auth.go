package proxy

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/regate/regate/engine"
	"github.com/regate/regate/internal/attempt"
)

// errAuth is wrapped by every authentication failure (407 / RFC 1929
// failure).
var errAuth = errors.New("proxy authentication failed")

// Identity is who a connection belongs to.
type Identity struct {
	ID      string          // the attempt id; "" when anonymous
	Attempt *engine.Attempt // nil when anonymous
}

// Credentials are what a client sent; Sent is false when it sent none.
type Credentials struct {
	User, Pass string
	Sent       bool
}

// parseProxyAuthorization reads a Basic Proxy-Authorization header value.
// An empty value is "no credentials"; anything else that is not valid Basic
// is an error (never a downgrade to anonymous).
func parseProxyAuthorization(v string) (Credentials, error) {
	if v == "" {
		return Credentials{}, nil
	}
	scheme, b64, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "basic") {
		return Credentials{}, fmt.Errorf("%w: only Basic credentials are accepted", errAuth)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: decoding Basic credentials: %v", errAuth, err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return Credentials{}, fmt.Errorf("%w: Basic credentials without a colon", errAuth)
	}
	return Credentials{User: user, Pass: pass, Sent: true}, nil
}

// Identify maps credentials to an identity (README, Attempts): sent
// credentials must be valid (and the bound attempt's, when one is bound);
// without credentials a client is the bound attempt, anonymous when that is
// allowed, or refused. Sources call it for every connection, so that a
// bound attempt's expiry is checked on each.
func (p *Proxy) Identify(c Credentials) (Identity, error) {
	return p.identify(c, "")
}

// identify is Identify on a listener bound to the attempt bound ("": the
// shared listeners, bound to Config.BoundAttempt if any).
func (p *Proxy) identify(c Credentials, bound string) (Identity, error) {
	if bound == "" {
		bound = p.cfg.BoundAttempt
	}
	if c.Sent {
		if bound != "" && c.User != bound {
			return Identity{}, fmt.Errorf("%w: credentials of another attempt than the bound one", errAuth)
		}
		a, err := p.cfg.Attempts.Authenticate(c.User, c.Pass)
		if err != nil {
			return Identity{}, fmt.Errorf("%w: %w", errAuth, err)
		}
		return identityOf(a), nil
	}
	if bound != "" {
		a, ok := p.cfg.Attempts.Get(bound)
		if !ok {
			return Identity{}, fmt.Errorf("%w: bound attempt %q is not registered", errAuth, bound)
		}
		if a.Expired(p.now()) {
			return Identity{}, fmt.Errorf("%w: bound attempt: %w", errAuth, attempt.ErrExpired)
		}
		return identityOf(a), nil
	}
	if p.cfg.AllowAnonymous {
		return Identity{}, nil
	}
	return Identity{}, fmt.Errorf("%w: credentials required", errAuth)
}

func identityOf(a attempt.Attempt) Identity {
	return Identity{ID: a.ID, Attempt: &engine.Attempt{Labels: a.Labels, Allow: a.Allow, Deny: a.Deny, Audit: a.Audit}}
}
