//go:build !linux

package isolate

import (
	"strings"
	"testing"
)

func TestAvailableNeedsLinux(t *testing.T) {
	if err := Available(); err == nil || !strings.Contains(err.Error(), "needs Linux namespaces") {
		t.Errorf("Available() = %v, want an error saying isolation needs Linux", err)
	}
}
