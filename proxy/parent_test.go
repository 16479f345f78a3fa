package proxy

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// countingResolver counts lookups and answers from a map.
type countingResolver struct {
	m mapResolver
	n atomic.Int64
}

func (r *countingResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r.n.Add(1)
	return r.m.LookupNetIP(ctx, network, host)
}

// TestPlanForParent: by name, regate checks what it can — literals, pins
// and a local resolution to any refused address — and a name that does
// not resolve locally is no error; lookups, failed ones too, are
// remembered, so a parent-only name costs one lookup, not one per request.
func TestPlanForParent(t *testing.T) {
	r := &countingResolver{m: mapResolver{
		"public.test":   {netip.MustParseAddr("93.184.216.34")},
		"internal.test": {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.1.2.3")},
	}}
	g := &guard{resolver: r, dialTimeout: time.Second, hosts: map[string][]netip.Addr{"pinned.test": {netip.MustParseAddr("127.0.0.1")}}}
	ctx := context.Background()
	for _, tt := range []struct {
		dest    Dest
		refused bool
	}{
		{Dest{Host: "public.test", Port: 443}, false},
		{Dest{Host: "parent-only.test", Port: 443}, false},
		{Dest{Host: "internal.test", Port: 443}, true}, // any refused address: the parent may pick it
		{Dest{Host: "pinned.test", Port: 443}, true},
		{Dest{Host: "10.1.2.3", Port: 443, IsIP: true}, true},
		{Dest{Host: "169.254.169.254", Port: 80, IsIP: true}, true},
	} {
		err := g.planForParent(ctx, tt.dest)
		var se *ssrfError
		if refused := errors.As(err, &se); refused != tt.refused || (err != nil && !refused) {
			t.Errorf("%s: %v, want refused %v", tt.dest, err, tt.refused)
		}
	}
	before := r.n.Load()
	for range 100 {
		_ = g.planForParent(ctx, Dest{Host: "parent-only.test", Port: 443})
		_ = g.planForParent(ctx, Dest{Host: "public.test", Port: 443})
	}
	if n := r.n.Load() - before; n != 0 {
		t.Errorf("%d more lookups for names already looked up, want 0", n)
	}
}
