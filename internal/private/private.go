// Package private checks that files regate trusts belong to the user
// running it: a file another local user created, or may read or write, is
// refused rather than used (an admin token they know, a decision log they
// read).
package private

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Rule is the permission bits a trusted regular file must not grant group
// or others.
type Rule fs.FileMode

const (
	// Secret files (the admin token) are neither readable nor writable by
	// group or others.
	Secret Rule = 0o066
	// Log files (the decision log) are not writable by group or others.
	Log Rule = 0o022
)

// Check reports why the open file f is not to be trusted under r, nil when
// it is. f is checked once open, so that what is checked is what is used.
func Check(f *os.File, r Rule) error {
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("checking %s: %w", f.Name(), err)
	}
	return checkInfo(f.Name(), fi, r)
}

// ReadFile reads the file at path once Check has passed it under r; a
// file larger than max bytes is an error, not truncated.
func ReadFile(path string, r Rule, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := Check(f, r); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, max)
	}
	return b, nil
}
