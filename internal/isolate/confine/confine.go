// Package confine takes every privilege from the process that is about to
// become the sandboxed command, then executes it: securebits,
// capabilities, user and group ids, no_new_privs, a seccomp filter.
package confine

// Target is who the command runs as.
type Target struct {
	UID, GID int
	// SetGroups clears the supplementary groups (possible where the user
	// namespace allows setgroups: a root caller's).
	SetGroups bool
}
