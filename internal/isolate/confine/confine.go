// Package confine takes every privilege from the process that is about to
// become the sandboxed command, then executes it: securebits,
// capabilities, user and group ids, no_new_privs, a seccomp filter.
package confine

import (
	"errors"
	"fmt"
)

// Target is who the command runs as.
type Target struct {
	UID, GID int
	// Groups are the supplementary groups to set when SetGroups is true;
	// an empty list then clears them. With SetGroups false they are left
	// as they are: in an unprivileged user namespace setgroups is denied
	// and must be skipped.
	Groups    []int
	SetGroups bool
}

// validate refuses a target that would leave an id unchanged (-1 means
// "unchanged" to setresuid) or name groups that would not be set.
func (t Target) validate() error {
	var errs []error
	if t.UID < 0 {
		errs = append(errs, fmt.Errorf("uid %d is negative", t.UID))
	}
	if t.GID < 0 {
		errs = append(errs, fmt.Errorf("gid %d is negative", t.GID))
	}
	for _, g := range t.Groups {
		if g < 0 {
			errs = append(errs, fmt.Errorf("group %d is negative", g))
		}
	}
	if len(t.Groups) > 0 && !t.SetGroups {
		errs = append(errs, errors.New("groups are given but SetGroups is false"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("checking the target: %w", err)
	}
	return nil
}

// ExecError is a failure of the exec itself, after every privilege was
// dropped (not found, not executable); any other error of Exec is one of
// confining.
type ExecError struct {
	Path string
	Err  error
}

func (e *ExecError) Error() string { return "executing " + e.Path + ": " + e.Err.Error() }
func (e *ExecError) Unwrap() error { return e.Err }
