package admin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/open-policy-agent/opa/v1/server/types"

	"github.com/regate/regate/internal/private"
)

// minTokenLen refuses tokens too short to resist guessing (16 characters,
// e.g. 64 bits in hex).
const minTokenLen = 16

// maxTokenFile bounds what is read of the token file.
const maxTokenFile = 4 << 10

// LoadToken reads the bearer token from path. When the file does not
// exist, it generates 128 random bits, writes them there (mode 0600, never
// replacing a file) and reports generated. An existing file must be
// private to this user (internal/private's Secret rule): another user's, or
// one others can read, holds a token they may know.
func LoadToken(path string) (token string, generated bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		token, err = writeToken(path)
		return token, err == nil, err
	}
	if err != nil {
		return "", false, fmt.Errorf("reading admin token: %w", err)
	}
	defer f.Close()
	if err := private.Check(f, private.Secret); err != nil {
		return "", false, fmt.Errorf("reading admin token: %w", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile))
	if err != nil {
		return "", false, fmt.Errorf("reading admin token: %w", err)
	}
	token = strings.TrimSpace(string(b))
	if len(token) < minTokenLen {
		return "", false, fmt.Errorf("reading admin token %s: shorter than %d characters", path, minTokenLen)
	}
	return token, false, nil
}

func writeToken(path string) (string, error) {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go ≥ 1.24)
	token := hex.EncodeToString(b[:])
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("writing admin token: %w", err)
	}
	if _, err := f.WriteString(token + "\n"); err != nil {
		_ = f.Close()
		_ = os.Remove(path)
		return "", fmt.Errorf("writing admin token: %w", err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(path)
		return "", fmt.Errorf("writing admin token: %w", err)
	}
	return token, nil
}

// overUnix marks the context of connections accepted on a unix socket,
// whose file permissions are the access control.
type overUnix struct{}

// connContext stamps connections by listener kind.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if c.LocalAddr().Network() == "unix" {
		return context.WithValue(ctx, overUnix{}, true)
	}
	return ctx
}

// authenticate requires `Authorization: Bearer <token>`, compared in
// constant time, on every request that did not come over a unix socket.
// (Serve refuses a TCP listener when no token is configured.)
func (s *Server) authenticate(next http.Handler) http.Handler {
	want := []byte(s.cfg.Token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if unix, _ := r.Context().Value(overUnix{}).(bool); unix {
			next.ServeHTTP(w, r)
			return
		}
		scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") ||
			len(want) == 0 || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="regate"`)
			writeError(w, http.StatusUnauthorized, types.CodeUnauthorized, "a valid bearer token is required")
			return
		}
		next.ServeHTTP(w, r)
	})
}
