package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/regate/regate/internal/config"
	"github.com/regate/regate/internal/declogread"
	"github.com/regate/regate/internal/private"
)

// Reading decision logs back (regate suggest, regate replay).
const (
	adminSource        = "admin"
	adminDecisionsPath = "/v1/decisions?limit=100000" // the admin API's maximum
	adminFetchTimeout  = 30 * time.Second
	maxTokenBytes      = 4 << 10
	maxProblemsShown   = 20
)

// logSourcesHelp is the part of suggest's and replay's help about LOG.
const logSourcesHelp = `Each LOG is a file of decision-log events: JSON lines as --decision-log
writes them, OPA's upload batches (JSON arrays, gzip'd or not, as a log
receiver stores them) or a saved /v1/decisions answer; - is standard input;
admin reads the recent decisions of a running regate serve from its admin
API (the default socket), admin:unix:PATH or admin:PATH another socket,
admin:HOST:PORT a loopback TCP admin listener (with --admin-token-file).
A file named admin is ./admin. A line that is not an event is reported with
its line number and skipped.`

func addLogSourceFlags(fs *pflag.FlagSet) {
	fs.String("admin-token-file", "", "bearer token `FILE` for an admin:HOST:PORT source")
}

// readLogs reads the events of every source, reporting the parts that are
// not events on standard error. A source that cannot be read is an error,
// and so is reading no event at all (errNoEvents).
func (a *app) readLogs(ctx context.Context, fs *pflag.FlagSet, sources []string) ([]declogread.Event, error) {
	tokenFile, _ := fs.GetString("admin-token-file")
	var events []declogread.Event
	var problems []declogread.Problem
	for _, src := range sources {
		r, name, err := a.openLog(ctx, src, tokenFile)
		if err != nil {
			return nil, err
		}
		evs, probs, err := declogread.Read(r, name)
		_ = r.Close()
		if err != nil {
			return nil, err
		}
		events = append(events, evs...)
		problems = append(problems, probs...)
	}
	for i, p := range problems {
		if i == maxProblemsShown {
			fmt.Fprintf(a.stderr, "regate: and %d more lines that are not events, skipped\n", len(problems)-i)
			break
		}
		fmt.Fprintf(a.stderr, "regate: %s (skipped)\n", printable(p.Error()))
	}
	if len(events) == 0 {
		return nil, errNoEvents
	}
	return events, nil
}

// openLog opens one source: -, admin[:ADDR], or a file.
func (a *app) openLog(ctx context.Context, src, tokenFile string) (io.ReadCloser, string, error) {
	switch {
	case src == "-":
		return io.NopCloser(a.stdin), "stdin", nil
	case src == adminSource:
		return fetchDecisions(ctx, config.DefaultAdmin().Addr, tokenFile)
	case strings.HasPrefix(src, adminSource+":"):
		addr := strings.TrimPrefix(src, adminSource+":")
		if !strings.HasPrefix(addr, "unix:") && strings.ContainsAny(addr, `/\`) {
			addr = "unix:" + addr
		}
		return fetchDecisions(ctx, addr, tokenFile)
	}
	f, err := os.Open(src)
	if err != nil {
		return nil, "", fmt.Errorf("opening decision log: %w", err)
	}
	return f, src, nil
}

// fetchDecisions asks the admin API at addr ("unix:PATH" or a loopback
// HOST:PORT) for its recent decisions. No proxy is ever used.
func fetchDecisions(ctx context.Context, addr, tokenFile string) (io.ReadCloser, string, error) {
	tr := &http.Transport{Proxy: nil}
	base, token := "http://regate", ""
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}
	} else {
		host, _, err := net.SplitHostPort(addr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return nil, "", fmt.Errorf("admin source %q: want unix:PATH, PATH or a loopback HOST:PORT", addr)
		}
		if tokenFile == "" {
			return nil, "", fmt.Errorf("admin source %q: a TCP admin listener needs --admin-token-file", addr)
		}
		b, err := private.ReadFile(tokenFile, private.Secret, maxTokenBytes)
		if err != nil {
			return nil, "", fmt.Errorf("reading admin token: %w", err)
		}
		base, token = "http://"+addr, strings.TrimSpace(string(b))
	}
	ctx, cancel := context.WithTimeout(ctx, adminFetchTimeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+adminDecisionsPath, nil)
	if err != nil {
		cancel()
		return nil, "", fmt.Errorf("asking the admin API: %w", err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		cancel()
		return nil, "", fmt.Errorf("asking the admin API at %s: %w", addr, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		_ = resp.Body.Close()
		cancel()
		return nil, "", fmt.Errorf("asking the admin API at %s: %s: %s", addr, resp.Status, printable(strings.TrimSpace(string(msg))))
	}
	return &cancelCloser{ReadCloser: resp.Body, cancel: cancel}, "admin " + addr, nil
}

// cancelCloser ends the request's context when the body is closed.
type cancelCloser struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelCloser) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

// errNoEvents: nothing was read from any source.
var errNoEvents = errors.New("no decision-log events were read")
