package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestReadsProxyEnv(t *testing.T) {
	for _, tc := range []struct {
		version string
		want    bool
	}{
		{"v18.19.0", false},
		{"v20.20.2", false},
		{"v22.20.0", false},
		{"v22.21.0", true},
		{"v23.11.0", false},
		{"v24.0.0", false}, // fetch only
		{"v24.5.0", true},
		{"v25.1.0", true},
	} {
		major, minor, ok := nodeVersion(tc.version)
		if !ok {
			t.Fatalf("%s does not parse", tc.version)
		}
		if got := readsProxyEnv(major, minor); got != tc.want {
			t.Errorf("%s: readsProxyEnv = %v, want %v", tc.version, got, tc.want)
		}
	}
	for _, bad := range []string{"", "v", "20", "vX.1.2"} {
		if _, _, ok := nodeVersion(bad); ok {
			t.Errorf("%q parses", bad)
		}
	}
}

func TestNodeOf(t *testing.T) {
	dir := t.TempDir()
	script := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("PATH", dir)
	node := script("node", "#!/bin/sh\n")
	for _, tc := range []struct {
		name, path, want string
	}{
		{"node itself", node, node},
		{"nodejs", "/usr/bin/nodejs", "/usr/bin/nodejs"},
		{"npm", "/usr/bin/npm", node},
		{"npx", "/usr/local/bin/npx", node},
		{"env shebang", script("tool", "#!/usr/bin/env node\nconsole.log(1)\n"), node},
		{"env -S shebang", script("tool2", "#!/usr/bin/env -S node --no-warnings\n"), node},
		{"absolute shebang", script("tool3", "#!/opt/node/bin/node\n"), "/opt/node/bin/node"},
		{"python script", script("tool4", "#!/usr/bin/env python3\n"), ""},
		{"sh script", script("tool5", "#!/bin/sh\nnode -e 0\n"), ""},
		{"no shebang", script("tool6", "node\n"), ""},
		{"missing file", filepath.Join(dir, "missing"), ""},
	} {
		if got := nodeOf(tc.path); got != tc.want {
			t.Errorf("%s: nodeOf(%s) = %q, want %q", tc.name, tc.path, got, tc.want)
		}
	}
}
