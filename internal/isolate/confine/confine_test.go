package confine

import "testing"

// TestTargetValidate: ids of -1 would leave the caller's (setresuid's
// "unchanged"), and groups without SetGroups would be ignored.
func TestTargetValidate(t *testing.T) {
	for _, c := range []struct {
		name   string
		target Target
		ok     bool
	}{
		{"root", Target{}, true},
		{"nobody with groups", Target{UID: 65534, GID: 65534, Groups: []int{65534}, SetGroups: true}, true},
		{"negative uid", Target{UID: -1}, false},
		{"negative gid", Target{GID: -1}, false},
		{"negative group", Target{Groups: []int{-1}, SetGroups: true}, false},
		{"groups without SetGroups", Target{Groups: []int{0}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := c.target.validate(); (err == nil) != c.ok {
				t.Errorf("validate: %v, want ok %v", err, c.ok)
			}
		})
	}
}
