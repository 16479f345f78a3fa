package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/regate/regate/internal/attempt"
	"github.com/regate/regate/internal/childenv"
)

// fakeListeners hands out made-up addresses, at most max attempts at a
// time, and records what was closed.
type fakeListeners struct {
	mu     sync.Mutex
	max    int
	port   int
	open   map[string][]childenv.Listener
	closed []string
}

func (f *fakeListeners) Open(a attempt.Attempt) ([]childenv.Listener, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.open) >= f.max {
		return nil, fmt.Errorf("%w (max %d)", ErrListenerLimit, f.max)
	}
	f.port += 2
	ls := []childenv.Listener{
		{Kind: childenv.HTTP, Addr: fmt.Sprintf("127.0.0.1:%d", 40000+f.port)},
		{Kind: childenv.SOCKS5, Addr: fmt.Sprintf("127.0.0.1:%d", 40001+f.port)},
	}
	f.open[a.ID] = ls
	return ls, nil
}

func (f *fakeListeners) Close(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.open[id]; ok {
		delete(f.open, id)
		f.closed = append(f.closed, id)
	}
}

func (f *fakeListeners) Listeners(id string) []childenv.Listener {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.open[id]
}

func (f *fakeListeners) wasClosed(id string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Contains(f.closed, id)
}

// "listeners": true: the env points at the attempt's own listeners; the
// limit refuses more with 429 and registers nothing; removal and expiry
// close them.
func TestAttemptListeners(t *testing.T) {
	fl := &fakeListeners{max: 2, open: map[string][]childenv.Listener{}}
	f := newFixture(t, fixtureOpts{listeners: fl})
	var c struct {
		Result struct {
			ID        string
			Listeners map[string]string
			Env       map[string]string
		}
	}
	f.unix.do(t, "POST", "/v1/attempts", `{"id": "jvm-1", "listeners": true}`).want(t, http.StatusCreated).decode(t, &c)
	own := fl.Listeners("jvm-1")
	if len(own) != 2 || c.Result.Listeners["http"] != own[0].Addr || c.Result.Listeners["socks5"] != own[1].Addr {
		t.Fatalf("listeners %v, opened %v", c.Result.Listeners, own)
	}
	u, err := url.Parse(c.Result.Env["HTTP_PROXY"])
	if err != nil || u.Host != own[0].Addr || u.User.Username() != "jvm-1" {
		t.Errorf("HTTP_PROXY = %q, want the attempt's own listener %s", c.Result.Env["HTTP_PROXY"], own[0].Addr)
	}
	port := own[0].Addr[strings.LastIndexByte(own[0].Addr, ':')+1:]
	if !strings.Contains(c.Result.Env["JAVA_TOOL_OPTIONS"], "-Dhttp.proxyPort="+port+" ") {
		t.Errorf("JAVA_TOOL_OPTIONS = %q, want port %s", c.Result.Env["JAVA_TOOL_OPTIONS"], port)
	}
	if !strings.HasSuffix(c.Result.Env["REGATE_SOCKS_PROXY"], "@"+own[1].Addr) {
		t.Errorf("REGATE_SOCKS_PROXY = %q", c.Result.Env["REGATE_SOCKS_PROXY"])
	}
	if a := f.unix.do(t, "GET", "/v1/attempts/jvm-1", "").want(t, http.StatusOK); !strings.Contains(a.body, own[0].Addr) {
		t.Errorf("GET shows no listeners: %s", a.body)
	}
	plain := f.register(t, `{"id": "plain"}`)
	if u, _ := url.Parse(plain.Result.Env["HTTP_PROXY"]); "http://"+u.Host != f.proxyURL {
		t.Errorf("an attempt without listeners got %q", plain.Result.Env["HTTP_PROXY"])
	}

	f.unix.do(t, "POST", "/v1/attempts", `{"id": "jvm-2", "listeners": true, "ttl": "100ms"}`).want(t, http.StatusCreated)
	a := f.unix.do(t, "POST", "/v1/attempts", `{"id": "jvm-3", "listeners": true}`).want(t, http.StatusTooManyRequests)
	if !strings.Contains(a.body, "too many attempts with listeners") {
		t.Errorf("limit answer: %s", a.body)
	}
	f.unix.do(t, "GET", "/v1/attempts/jvm-3", "").want(t, http.StatusNotFound)
	f.unix.do(t, "POST", "/v1/attempts", `{"id": "jvm-1", "listeners": true}`).want(t, http.StatusConflict)

	f.unix.do(t, "DELETE", "/v1/attempts/jvm-1", "").want(t, http.StatusNoContent)
	if !fl.wasClosed("jvm-1") {
		t.Error("DELETE left the attempt's listeners open")
	}
	eventually(t, func() error { // the sweeper removes the expired one
		if !fl.wasClosed("jvm-2") {
			return fmt.Errorf("the expired attempt's listeners are open")
		}
		return nil
	})
}

func TestAttemptListenersUnavailable(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	a := f.unix.do(t, "POST", "/v1/attempts", `{"id": "jvm", "listeners": true}`).want(t, http.StatusBadRequest)
	if a.errorCode() != "invalid_parameter" {
		t.Errorf("answer: %s", a.body)
	}
	f.unix.do(t, "GET", "/v1/attempts/jvm", "").want(t, http.StatusNotFound)
}
