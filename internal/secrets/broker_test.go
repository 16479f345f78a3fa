package secrets

import (
	"net/http"
	"strings"
	"testing"
)

func loadTestSet(t *testing.T) *Set {
	t.Helper()
	specs, err := Merge(nil, []string{"github", "oa=OA@api.openai.test"})
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := Load(specs, func(name string) string {
		switch name {
		case "GH_TOKEN":
			return realToken
		case "OA":
			return "sk-proj-AbCdEf0123456789AbCdEf0123456789"
		}
		return ""
	})
	if err != nil {
		t.Fatal(err)
	}
	return NewSet(loaded)
}

// TestBrokerGrants: under serve each attempt gets placeholders of its own,
// of the real value's shape; one attempt's placeholder is nothing to
// another's set, and a revoked grant swaps nothing again.
func TestBrokerGrants(t *testing.T) {
	all := loadTestSet(t)
	b := ForServe(all)
	if b.For("") != nil || b.For("a1") != nil {
		t.Fatal("serve: a flow without a grant has secrets")
	}
	envA, err := b.Grant("a1", []string{"github"})
	if err != nil {
		t.Fatal(err)
	}
	envB, err := b.Grant("a2", []string{"github", "oa", "github"})
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := envA["GH_TOKEN"], envB["GH_TOKEN"]
	if pa == "" || pa != envA["GITHUB_TOKEN"] || pa == pb || pa == realToken || pa == all.Secrets()[0].Placeholder() {
		t.Fatalf("placeholders a1 %q, a2 %q, run %q: want distinct, per attempt", pa, pb, all.Secrets()[0].Placeholder())
	}
	if len(pa) != len(realToken) || !strings.HasPrefix(pa, "ghp_") {
		t.Errorf("placeholder %q is not shaped like the value", pa)
	}
	if _, ok := envA["OA"]; ok || len(b.For("a2").Secrets()) != 2 || len(b.For("a1").Secrets()) != 1 {
		t.Errorf("grants: a1 %v, a2 %d secrets", envA, len(b.For("a2").Secrets()))
	}
	req := func(ph string) *http.Request {
		r, _ := http.NewRequest("GET", "https://api.github.com/user", nil)
		r.Header.Set("Authorization", "Bearer "+ph)
		return r
	}
	if got := b.For("a2").Present(req(pa)); len(got) != 0 {
		t.Errorf("a2's set sees a1's placeholder: %v", got)
	}
	r := req(pa)
	if err := b.For("a1").Swap(r, "api.github.com", 443); err != nil || r.Header.Get("Authorization") != "Bearer "+realToken {
		t.Fatalf("a1's swap: %v, %q", err, r.Header.Get("Authorization"))
	}
	if got := b.All().RealPresent(r); len(got) != 1 || got[0] != "github" {
		t.Errorf("every secret's set does not see the real value: %v", got)
	}
	b.Revoke("a1")
	if b.For("a1") != nil {
		t.Error("a revoked grant is still there")
	}
	if _, err := b.Grant("a3", []string{"nope"}); err == nil || !strings.Contains(err.Error(), "github, oa") {
		t.Errorf("unknown name: %v", err)
	}
	if _, err := (*Broker)(nil).Grant("a4", []string{"github"}); err == nil {
		t.Error("a nil broker granted a secret")
	}
}

// TestBrokerRun: under run every flow is the command's.
func TestBrokerRun(t *testing.T) {
	all := loadTestSet(t)
	b := ForRun(all)
	if b.For("") != all || b.For("anything") != all || b.All() != all {
		t.Fatal("run: a flow does not use the run's set")
	}
	if ForRun(nil) != nil || ForServe(nil) != nil {
		t.Fatal("no secrets: want a nil broker")
	}
}
