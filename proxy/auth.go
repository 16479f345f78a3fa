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

// identity is who a connection belongs to.
type identity struct {
	id      string
	attempt *engine.Attempt // nil when anonymous
}

// credentials are what a client sent; ok is false when it sent none.
type credentials struct {
	user, pass string
	ok         bool
}

// parseProxyAuthorization reads a Basic Proxy-Authorization header value.
// An empty value is "no credentials"; anything else that is not valid Basic
// is an error (never a downgrade to anonymous).
func parseProxyAuthorization(v string) (credentials, error) {
	if v == "" {
		return credentials{}, nil
	}
	scheme, b64, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "basic") {
		return credentials{}, fmt.Errorf("%w: only Basic credentials are accepted", errAuth)
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return credentials{}, fmt.Errorf("%w: decoding Basic credentials: %v", errAuth, err)
	}
	user, pass, ok := strings.Cut(string(raw), ":")
	if !ok {
		return credentials{}, fmt.Errorf("%w: Basic credentials without a colon", errAuth)
	}
	return credentials{user: user, pass: pass, ok: true}, nil
}

// identify maps credentials to an identity, as DESIGN §4 describes: sent
// credentials must be valid (and the bound attempt's, when one is bound);
// without credentials a client is the bound attempt, anonymous when that is
// allowed, or refused.
func (p *Proxy) identify(c credentials) (identity, error) {
	bound := p.cfg.BoundAttempt
	if c.ok {
		if bound != "" && c.user != bound {
			return identity{}, fmt.Errorf("%w: credentials of another attempt than the bound one", errAuth)
		}
		a, err := p.cfg.Attempts.Authenticate(c.user, c.pass)
		if err != nil {
			return identity{}, fmt.Errorf("%w: %w", errAuth, err)
		}
		return identityOf(a), nil
	}
	if bound != "" {
		a, ok := p.cfg.Attempts.Get(bound)
		if !ok {
			return identity{}, fmt.Errorf("%w: bound attempt %q is not registered", errAuth, bound)
		}
		if a.Expired(p.now()) {
			return identity{}, fmt.Errorf("%w: bound attempt: %w", errAuth, attempt.ErrExpired)
		}
		return identityOf(a), nil
	}
	if p.cfg.AllowAnonymous {
		return identity{}, nil
	}
	return identity{}, fmt.Errorf("%w: credentials required", errAuth)
}

func identityOf(a attempt.Attempt) identity {
	return identity{id: a.ID, attempt: &engine.Attempt{Labels: a.Labels, Allow: a.Allow, Deny: a.Deny}}
}
