package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecrets(t *testing.T) {
	dir := t.TempDir()
	write := func(text string) string {
		path := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg, err := Load(Options{Mode: ModeRun, File: write(`
secrets:
  - name: anthropic
    hosts: [api.anthropic.test]
  - name: mine
    file: /nonexistent
    send: basic
    hosts: ["**.mine.test"]
    vars: [MINE]
`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Secrets) != 2 || cfg.Secrets[0].Header != "x-api-key" || cfg.Secrets[0].Vars[0] != "ANTHROPIC_API_KEY" || cfg.Secrets[1].Send != "basic" {
		t.Fatalf("secrets %+v", cfg.Secrets)
	}
	_, err = Load(Options{Mode: ModeRun, File: write(`
secrets:
  - name: a
    env: A
    hosts: ["*"]
  - name: b
    typo: 1
  - name: c
    env: C
    send: carrier-pigeon
    hosts: [c.test]
`)})
	for _, want := range []string{"secrets[0]", "every host", "secrets[1]", "typo", "secrets[2]", "carrier-pigeon"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not name %q", err, want)
		}
	}
}
