package main

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"

	"github.com/spf13/cobra"
)

// connectCommand is git's SSH ProxyCommand under `regate run`: it opens a
// CONNECT tunnel through the proxy in $HTTPS_PROXY/$HTTP_PROXY and relays
// standard input and output over it, so ssh needs neither nc nor socat.
func (a *app) connectCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:    "connect HOST PORT",
		Short:  "Relay stdin/stdout through a CONNECT tunnel of the proxy (ssh ProxyCommand)",
		Hidden: true,
		Args:   argsCode(cobra.ExactArgs(2), exitError),
		RunE: func(cmd *cobra.Command, args []string) error {
			proxyURL, _ := cmd.Flags().GetString("proxy")
			return a.connect(proxyURL, net.JoinHostPort(args[0], args[1]))
		},
	}
	cmd.Flags().String("proxy", "", "proxy URL (default $HTTPS_PROXY, then $HTTP_PROXY)")
	usageCode(cmd, exitError)
	return cmd
}

func (a *app) connect(proxyURL, target string) error {
	if proxyURL == "" {
		proxyURL = firstEnv("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")
	}
	if proxyURL == "" {
		return errors.New("connect: no proxy: set --proxy or HTTPS_PROXY")
	}
	u, err := url.Parse(proxyURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("connect: bad proxy URL %q", proxyURL)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		return fmt.Errorf("connect: dialing proxy: %w", err)
	}
	defer conn.Close()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: target}, Host: target, Header: http.Header{}}
	if u.User != nil {
		pass, _ := u.User.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + pass))
		req.Header.Set("Proxy-Authorization", "Basic "+cred)
	}
	if err := req.Write(conn); err != nil {
		return fmt.Errorf("connect: writing CONNECT: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return fmt.Errorf("connect: reading proxy answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("connect: proxy refused %s: %s", target, resp.Status)
	}
	return relay(conn, br, a.stdin, a.stdout)
}

// relay copies in → conn and conn (its buffered bytes first) → out until
// the remote side closes.
func relay(conn net.Conn, br *bufio.Reader, in io.Reader, out io.Writer) error {
	go func() {
		_, _ = io.Copy(conn, in)
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = cw.CloseWrite()
		}
	}()
	_, err := io.Copy(out, br)
	return err
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
