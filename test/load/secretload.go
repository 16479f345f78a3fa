package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The cost of the secrets swap (README, "Keeping secrets out of the
// sandbox"): the served regate of the inspect workload also holds a
// secret bound to secretName, and an attempt granted it sends its
// placeholder in Authorization on every request, which regate swaps for
// the value. X:secret against X:inspect is what the swap adds.
const (
	secretName   = "secret.load.test"
	secretSuffix = ":secret"
	secretValue  = "ghp_L0adT3stTokenABCDEFGHIJKLMNOPQRSTUV"
	secretVar    = "LOAD_TOKEN"
)

// inspectedOf is the inspected target a secret target is measured
// against.
func inspectedOf(name string) (string, bool) {
	base, ok := strings.CutSuffix(name, secretSuffix)
	return base + inspectSuffix, ok
}

// secretPolicy are the flags that make a served regate hold the secret
// (a secrets: entry read from a file of dir, mode 0600) and open its admin
// API on a socket of dir, which grantSecret uses.
func secretPolicy(dir string) (args []string, sock string, err error) {
	file := filepath.Join(dir, "load-secret")
	if err := os.WriteFile(file, []byte(secretValue+"\n"), 0o600); err != nil {
		return nil, "", err
	}
	cfg := filepath.Join(dir, "load-secrets.yaml")
	body := fmt.Sprintf("secrets:\n  - name: load\n    file: %s\n    send: bearer\n    hosts: [%s]\n    vars: [%s]\n", file, secretName, secretVar)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		return nil, "", err
	}
	sock = filepath.Join(dir, "inspect-admin.sock")
	return []string{"--config", cfg, "--allow", secretName, "--resolve", secretName + ":127.0.0.1", "--admin", "unix:" + sock}, sock, nil
}

// grantSecret registers an attempt that holds the secret with the regate
// whose admin socket is sock, and returns the target that sends its
// placeholder through addr as that attempt.
func (c *inspectCerts) grantSecret(ctx context.Context, name, addr, sock string, u *upstream) (target, error) {
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, "POST", "http://regate/v1/attempts", strings.NewReader(`{"id": "load-secret", "secrets": ["load"]}`))
	if err != nil {
		return target{}, err
	}
	// The proxy listener accepts (the kernel's backlog) before the admin
	// socket is there.
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
	}
	resp, err := client.Do(req)
	if err != nil {
		return target{}, fmt.Errorf("granting the secret: %w", err)
	}
	defer resp.Body.Close()
	var created struct {
		Result struct {
			ID, Token string
			Env       map[string]string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&created); err != nil || resp.StatusCode != http.StatusCreated {
		return target{}, fmt.Errorf("granting the secret: %s (%v)", resp.Status, err)
	}
	ph := created.Result.Env[secretVar]
	if ph == "" || ph == secretValue {
		return target{}, fmt.Errorf("granting the secret: no placeholder in %s", secretVar)
	}
	return target{name: name + secretSuffix, proxyAddr: addr,
		proxyAuth: "Basic " + base64.StdEncoding.EncodeToString([]byte(created.Result.ID+":"+created.Result.Token)),
		tls: &tlsPath{authority: net.JoinHostPort(secretName, strconv.Itoa(u.httpsPort)), config: clientTLS(secretName, c.inspect.pool()),
			header: "Authorization: Bearer " + ph + "\r\n"}}, nil
}
