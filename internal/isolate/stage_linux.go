package isolate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"syscall"

	"github.com/regate/regate/internal/isolate/confine"
)

// stageMsg is what the init hands the last stage: the command and who it
// runs as.
type stageMsg struct {
	execMsg
	UID int `json:"uid"`
	GID int `json:"gid"`
	// SetGroups clears the supplementary groups (a root caller's user
	// namespace allows it).
	SetGroups bool `json:"set_groups"`
}

// Exec is the last stage, run as `regate __isolate-exec STAGE` by the
// init: on one locked thread it drops every privilege (confine) and
// executes the command with its own environment. It returns only when that
// failed, with the exit status to report: 127 not found, 126 not
// executable, 125 otherwise.
func Exec(args []string, stderr io.Writer) int {
	runtime.LockOSThread()
	var m stageMsg
	if len(args) != 1 || json.Unmarshal([]byte(args[0]), &m) != nil {
		fmt.Fprintln(stderr, "regate: isolate: the last stage needs its message")
		return 125
	}
	err := confine.Exec(m.Path, m.Argv, os.Environ(), confine.Target{UID: m.UID, GID: m.GID, SetGroups: m.SetGroups})
	fmt.Fprintf(stderr, "regate: %v\n", err)
	var ee *confine.ExecError
	switch {
	case !errors.As(err, &ee):
		return 125 // confining failed: nothing ran
	case errors.Is(err, syscall.ENOENT):
		return 127
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.ENOEXEC):
		return 126
	}
	return 125
}
