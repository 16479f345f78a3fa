package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// probeTimeout bounds what run asks before starting CMD (`node
// --version`, `git config`).
const probeTimeout = 5 * time.Second

// nodeWarning is the warning `run` prints before a Node.js command that
// would bypass the proxy (README, Environment of the child): fetch() and
// http/https.request honour HTTP(S)_PROXY only under NODE_USE_ENV_PROXY,
// which Node.js reads from 24.5 (fetch alone from 24.0) and from 22.21 in
// the 22 line. Without --isolate those connections go out unseen. "" when
// CMD is not Node.js (node, nodejs, npm, npx, or a script whose #! names
// node), or its node reads the variables, or cannot say its version.
func nodeWarning(ctx context.Context, path string, env []string) string {
	node := nodeOf(path)
	if node == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--version")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	version := strings.TrimSpace(string(out))
	major, minor, ok := nodeVersion(version)
	if !ok || readsProxyEnv(major, minor) {
		return ""
	}
	return fmt.Sprintf("regate: warning: Node.js %s ignores the proxy variables in fetch() and https.get(): "+
		"those connections bypass regate unseen. Run with --isolate (its transparent path decides them), "+
		"use Node.js 22.21+ or 24.5+ (regate sets NODE_USE_ENV_PROXY=1), or make the program use undici's "+
		"EnvHttpProxyAgent (setGlobalDispatcher(new EnvHttpProxyAgent())).", version)
}

// readsProxyEnv reports whether Node.js major.minor proxies both fetch and
// http/https.request under NODE_USE_ENV_PROXY=1.
func readsProxyEnv(major, minor int) bool {
	return major > 24 || major == 24 && minor >= 5 || major == 22 && minor >= 21
}

// nodeVersion parses "v20.20.2".
func nodeVersion(s string) (major, minor int, ok bool) {
	parts := strings.SplitN(strings.TrimPrefix(s, "v"), ".", 3)
	if len(parts) < 2 {
		return 0, 0, false
	}
	var err1, err2 error
	major, err1 = strconv.Atoi(parts[0])
	minor, err2 = strconv.Atoi(parts[1])
	return major, minor, err1 == nil && err2 == nil
}

// nodeOf returns the node binary that runs the command at path: path
// itself for node, the node on PATH for npm, npx and `#!/usr/bin/env
// node` scripts, the interpreter a `#!/…/node` line names; "" when the
// command is not Node.js.
func nodeOf(path string) string {
	switch strings.TrimSuffix(filepath.Base(path), ".exe") {
	case "node", "nodejs":
		return path
	case "npm", "npx":
		return lookNode()
	}
	interp := shebang(path)
	if len(interp) == 0 {
		return ""
	}
	if filepath.Base(interp[0]) == "env" {
		for _, a := range interp[1:] {
			if !strings.HasPrefix(a, "-") {
				if base := filepath.Base(a); base == "node" || base == "nodejs" {
					return lookNode()
				}
				return ""
			}
		}
		return ""
	}
	if base := filepath.Base(interp[0]); base == "node" || base == "nodejs" {
		return interp[0]
	}
	return ""
}

func lookNode() string {
	if p, err := exec.LookPath("node"); err == nil {
		return p
	}
	return ""
}

// shebang returns the interpreter line of a script, split into fields
// (nil when the file does not start with "#!").
func shebang(path string) []string {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	buf := make([]byte, 256)
	n, _ := f.Read(buf)
	line, ok := bytes.CutPrefix(buf[:n], []byte("#!"))
	if !ok {
		return nil
	}
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	return strings.Fields(string(line))
}
