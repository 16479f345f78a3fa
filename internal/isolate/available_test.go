package isolate

import (
	"strings"
	"testing"
)

func TestAvailableNamesTheFlag(t *testing.T) {
	err := Available()
	if err == nil {
		t.Skip("isolation is available here")
	}
	if !strings.HasPrefix(err.Error(), "--isolate ") {
		t.Errorf("error %q does not name the flag", err)
	}
}
