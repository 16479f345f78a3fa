//go:build !linux

package confine

import "errors"

// Exec fails off Linux.
func Exec(string, []string, []string, Target) error {
	return errors.New("confining a command needs Linux")
}
