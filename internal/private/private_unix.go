//go:build unix

package private

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkInfo requires the file to belong to the effective user or root; a
// regular file must also not grant r's bits. Other files (devices such as
// /dev/null, pipes, terminals) are checked for their owner only: their mode
// says nothing about who reads what regate writes to them.
func checkInfo(name string, fi fs.FileInfo, r Rule) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("checking %s: no owner in its file information", name)
	}
	if uid := uint32(os.Geteuid()); st.Uid != uid && st.Uid != 0 {
		return fmt.Errorf("%s belongs to another user (uid %d, regate runs as uid %d)", name, st.Uid, uid)
	}
	if fi.Mode().IsRegular() && fi.Mode().Perm()&fs.FileMode(r) != 0 {
		return modeError(name, fi.Mode(), r)
	}
	return nil
}

// modeError says which of r's bits fi's mode grants, and how to fix it.
func modeError(name string, mode fs.FileMode, r Rule) error {
	bad := mode.Perm() & fs.FileMode(r)
	what, fix := "writable", "go-"
	switch {
	case bad&0o044 != 0 && bad&0o022 != 0:
		what = "readable and writable"
	case bad&0o044 != 0:
		what = "readable"
	}
	if r&0o044 != 0 {
		fix += "r"
	}
	if r&0o022 != 0 {
		fix += "w"
	}
	return fmt.Errorf("%s is %s by group or others (mode %04o); run chmod %s %s", name, what, mode.Perm(), fix, name)
}
