package secrets

import (
	"crypto/rand"
	"errors"
	"math/big"
	"strings"
)

// minRandom is the fewest characters of a value a placeholder draws at
// random: fewer would make placeholders guessable and likely to occur in
// ordinary text.
const minRandom = 12

// maxPrefix bounds the prefix a placeholder keeps (github_pat_,
// sk-ant-api03-).
const maxPrefix = 16

// prefixLen is the length of value's prefix: up to and including its last
// '_' or '-' among the first maxPrefix characters (ghp_, sk-, npm_).
func prefixLen(value string) int {
	n := 0
	for i := 0; i < len(value) && i < maxPrefix; i++ {
		if value[i] == '_' || value[i] == '-' {
			n = i + 1
		}
	}
	return n
}

const (
	lower    = "abcdefghijklmnopqrstuvwxyz"
	upper    = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	digits   = "0123456789"
	hexLower = "0123456789abcdef"
	hexUpper = "0123456789ABCDEF"
)

// Placeholder returns a random stand-in for value (crypto/rand): the same
// prefix and length, each other letter or digit replaced by a random one
// of its class (hex stays hex), other characters kept, so that client-side
// format checks pass. It differs from value in at least minRandom places
// drawn at random.
func Placeholder(value string) (string, error) {
	pre := prefixLen(value)
	body := value[pre:]
	hexL := strings.Trim(body, hexLower) == "" && strings.ContainsAny(body, "abcdef")
	hexU := strings.Trim(body, hexUpper) == "" && strings.ContainsAny(body, "ABCDEF")
	out := []byte(value)
	drawn := 0
	for i := pre; i < len(out); i++ {
		var class string
		switch c := out[i]; {
		case hexL:
			class = hexLower
		case hexU:
			class = hexUpper
		case c >= 'a' && c <= 'z':
			class = lower
		case c >= 'A' && c <= 'Z':
			class = upper
		case c >= '0' && c <= '9':
			class = digits
		default:
			continue
		}
		n, err := rand.Int(rand.Reader, big.NewInt(int64(len(class))))
		if err != nil {
			return "", err
		}
		out[i] = class[n.Int64()]
		drawn++
	}
	if drawn < minRandom {
		return "", errors.New("too short to stand in for: a secret needs at least 12 letters or digits after its prefix")
	}
	p := string(out)
	if p == value || strings.Contains(p, value) || strings.Contains(value, p) {
		return Placeholder(value) // drawn the value itself: astronomically rare
	}
	return p, nil
}
