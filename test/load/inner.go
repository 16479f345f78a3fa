package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"time"
)

// innerArg, as the first argument, makes the tool the client inside a
// sandbox (`regate run --isolate -- load -inner ECHO SINK SOURCE`): it
// answers the outer process's requests, one JSON line each way, running
// the tunnel workloads against the upstream's ports on the host.
const innerArg = "-inner"

// innerHello is the inner client's first line: why a path is missing, ""
// when the sandbox has it.
type innerHello struct {
	Transparent string `json:"transparent,omitempty"`
	Proxy       string `json:"proxy,omitempty"`
}

// innerRequest asks the inner client to run one workload op through the
// named target's path: an upload or download of size bytes, or count
// setups back to back.
type innerRequest struct {
	Target string `json:"target"`
	Op     string `json:"op"`
	Size   int64  `json:"size,omitempty"`
	Count  int    `json:"count,omitempty"`
}

// innerAnswer is what the op did: bytes moved and the time it took
// (bulk), or each successful setup's time; errors and the first one.
type innerAnswer struct {
	Bytes  int64   `json:"bytes,omitempty"`
	Nanos  int64   `json:"ns,omitempty"`
	Setups []int64 `json:"setups,omitempty"`
	Errs   int     `json:"errs,omitempty"`
	Err    string  `json:"err,omitempty"`
}

// Inner ops.
const (
	opUpload   = "upload"
	opDownload = "download"
	opSetup    = "setup"
	opLookup   = "lookup"
)

// serveInner is the inner client: args are the upstream's echo, sink and
// source ports; requests are read from in until it is closed.
func serveInner(args []string, in io.Reader, out io.Writer) error {
	u, err := innerUpstream(args)
	if err != nil {
		return err
	}
	targets, hello := innerTargets()
	enc := json.NewEncoder(out)
	if err := enc.Encode(hello); err != nil {
		return err
	}
	dec := json.NewDecoder(in)
	for {
		var req innerRequest
		if err := dec.Decode(&req); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("reading a request: %w", err)
		}
		a := innerAnswer{Err: fmt.Sprintf("no target %q here", req.Target)}
		if t, ok := targets[req.Target]; ok {
			a = runInnerOp(t, u, req)
		}
		if err := enc.Encode(a); err != nil {
			return err
		}
	}
}

// innerUpstream is the host's upstream as the inner client knows it: its
// tunnel ports.
func innerUpstream(args []string) (*upstream, error) {
	if len(args) != 3 {
		return nil, fmt.Errorf("%s: want ECHO SINK SOURCE ports, got %q", innerArg, args)
	}
	var ports [3]int
	for i, a := range args {
		p, err := strconv.Atoi(a)
		if err != nil {
			return nil, fmt.Errorf("%s: port %q: %w", innerArg, a, err)
		}
		ports[i] = p
	}
	return &upstream{echoPort: ports[0], sinkPort: ports[1], sourcePort: ports[2]}, nil
}

// innerTargets are the paths to the upstream: direct to 127.0.0.1 (the
// client outside a sandbox), and in a sandbox a plain dial of its name
// (the transparent path, when the TUN link is there) and a CONNECT
// through the proxy that HTTP_PROXY names, with its credentials.
func innerTargets() (map[string]target, innerHello) {
	var hello innerHello
	targets := map[string]target{targetDirect: {name: targetDirect}}
	if _, err := net.InterfaceByName("regate0"); err != nil {
		hello.Transparent = "no regate0 link in the sandbox: " + err.Error()
	} else {
		targets[targetTransparent] = target{name: targetTransparent, byName: true}
	}
	p, err := url.Parse(os.Getenv("HTTP_PROXY"))
	switch {
	case err != nil:
		hello.Proxy = "HTTP_PROXY: " + err.Error()
	case p.Host == "":
		hello.Proxy = "no HTTP_PROXY in the sandbox"
	default:
		t := target{name: targetIsolateProxy, proxyAddr: p.Host}
		if p.User != nil {
			pass, _ := p.User.Password()
			t.proxyAuth = "Basic " + base64.StdEncoding.EncodeToString([]byte(p.User.Username()+":"+pass))
		}
		targets[targetIsolateProxy] = t
	}
	return targets, hello
}

func runInnerOp(t target, u *upstream, req innerRequest) innerAnswer {
	var s sample
	switch req.Op {
	case opUpload:
		s = upload(t, u, req.Size)
	case opDownload:
		s = download(t, u, req.Size)
	case opSetup:
		return repeat(req.Count, func() (time.Duration, error) { return connectSetup(t, u) })
	case opLookup:
		return repeat(req.Count, lookup)
	default:
		s = failed(fmt.Errorf("unknown op %q", req.Op))
	}
	a := innerAnswer{Bytes: s.bytes, Nanos: int64(s.dur), Errs: int(s.errs)}
	if s.firstErr != nil {
		a.Err = s.firstErr.Error()
	}
	return a
}

// repeat times op n times, one after the other.
func repeat(n int, op func() (time.Duration, error)) innerAnswer {
	var a innerAnswer
	for range n {
		d, err := op()
		if err != nil {
			if a.Errs++; a.Err == "" {
				a.Err = err.Error()
			}
			continue
		}
		a.Setups = append(a.Setups, int64(d))
	}
	return a
}

// lookup resolves upstreamName as a dial by name does (A and AAAA at
// once).
func lookup() (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	start := time.Now()
	_, err := net.DefaultResolver.LookupHost(ctx, upstreamName)
	return time.Since(start), err
}

// sample is a bulk answer as the outer process counts it.
func (a innerAnswer) sample() sample {
	if a.Errs > 0 || a.Err != "" {
		return failed(errors.New(a.Err))
	}
	return sample{ops: 1, bytes: a.Bytes, dur: time.Duration(a.Nanos)}
}
