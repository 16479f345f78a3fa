package proxy

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode/utf8"
)

// errBadPath is wrapped by every path the proxy refuses to forward (400):
// one whose meaning upstream could differ from what the policy saw.
var errBadPath = errors.New("request path cannot be forwarded as decided")

// cleanPath is the path of a plain request as the policy sees it and as
// upstream receives it: each segment percent-decoded, dot segments removed
// (RFC 3986 §5.2.4), repeated slashes folded, a trailing slash kept.
// escaped is the path as the client sent it (url.URL.EscapedPath).
//
// A path whose segments upstream could split or resolve otherwise is
// refused rather than guessed at: an encoded or raw backslash, an encoded
// slash inside a segment, NUL and other control characters, invalid UTF-8
// (overlong forms of "." and "/"), a "." or ".." segment with ";"
// parameters (Tomcat and Jetty resolve "..;" as ".."), and segments of
// three or more dots (resolved as ".." by some servers).
func cleanPath(escaped string) (string, error) {
	if escaped == "" {
		return "/", nil
	}
	if escaped[0] != '/' {
		return "", fmt.Errorf("%w: %q does not start with /", errBadPath, escaped)
	}
	raw := strings.Split(escaped[1:], "/")
	out := make([]string, 0, len(raw))
	for i, seg := range raw {
		s, err := url.PathUnescape(seg)
		if err != nil {
			return "", fmt.Errorf("%w: %v", errBadPath, err)
		}
		if err := checkSegment(s); err != nil {
			return "", fmt.Errorf("%w: segment %q: %v", errBadPath, seg, err)
		}
		last := i == len(raw)-1
		switch s {
		case "", ".":
			if last && len(out) > 0 {
				out = append(out, "") // keep the trailing slash
			}
		case "..":
			if len(out) > 0 && out[len(out)-1] == "" {
				out = out[:len(out)-1]
			}
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last && len(out) > 0 {
				out = append(out, "")
			}
		default:
			out = append(out, s)
		}
	}
	return "/" + strings.Join(out, "/"), nil
}

// checkSegment refuses what one decoded segment must not hold.
func checkSegment(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("invalid UTF-8")
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '/':
			return errors.New("encoded slash")
		case c == '\\':
			return errors.New("backslash")
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("control character %#x", c)
		}
	}
	name, _, params := strings.Cut(s, ";")
	if params && (name == "." || name == "..") {
		return errors.New("dot segment with parameters")
	}
	if len(name) > 2 && strings.Trim(name, ".") == "" {
		return errors.New("segment of dots only")
	}
	return nil
}
