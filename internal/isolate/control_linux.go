package isolate

import (
	"encoding/json"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// maxMsg bounds a control message (an environment included).
const maxMsg = 1 << 20

// sendMsg sends v as one SEQPACKET message, with files' descriptors.
func sendMsg(c *net.UnixConn, v any, files []*os.File) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding a control message: %w", err)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix(b, oob, nil); err != nil {
		return fmt.Errorf("sending a control message: %w", err)
	}
	return nil
}

// readMsg reads one message into v.
func readMsg(c *net.UnixConn, v any) error {
	_, err := readMsgFiles(c, v)
	return err
}

// readMsgFiles reads one message into v and returns the descriptors that
// came with it.
func readMsgFiles(c *net.UnixConn, v any) ([]*os.File, error) {
	b := make([]byte, maxMsg)
	oob := make([]byte, unix.CmsgSpace(16*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(b, oob)
	if err != nil {
		return nil, fmt.Errorf("reading a control message: %w", err)
	}
	var files []*os.File
	if oobn > 0 {
		scms, err := unix.ParseSocketControlMessage(oob[:oobn])
		if err != nil {
			return nil, fmt.Errorf("reading passed descriptors: %w", err)
		}
		for _, scm := range scms {
			fds, err := unix.ParseUnixRights(&scm)
			if err != nil {
				return nil, fmt.Errorf("reading passed descriptors: %w", err)
			}
			for _, fd := range fds {
				unix.CloseOnExec(fd)
				files = append(files, os.NewFile(uintptr(fd), "passed"))
			}
		}
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 {
		closeAll(files)
		return nil, fmt.Errorf("reading a control message: truncated")
	}
	if n == 0 {
		closeAll(files)
		return nil, fmt.Errorf("reading a control message: the other side closed")
	}
	if err := json.Unmarshal(b[:n], v); err != nil {
		closeAll(files)
		return nil, fmt.Errorf("decoding a control message: %w", err)
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
