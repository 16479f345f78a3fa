package confine

import (
	"encoding/binary"
	"github.com/regate/regate/internal/testenv"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// seccompData is struct seccomp_data for a call nr with first argument
// arg0, on arch, as x/net/bpf's machine reads it: it loads 32-bit words in
// network order where the kernel loads them in the machine's, so each word
// the filter loads (nr, arch, the low half of arg0) is written big-endian
// at the offset the kernel gives it.
func seccompData(arch, nr uint32, arg0 uint64) []byte {
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[offNR:], nr)
	binary.BigEndian.PutUint32(b[offArch:], arch)
	binary.BigEndian.PutUint32(b[offArg0:], uint32(arg0))
	binary.BigEndian.PutUint32(b[offArg0+4:], uint32(arg0>>32))
	return b
}

// refusedWithEPERM is the list the filter must refuse with EPERM, kept
// apart from rules so that losing a row there fails here.
var refusedWithEPERM = map[string]uint32{
	"ptrace":            unix.SYS_PTRACE,
	"process_vm_readv":  unix.SYS_PROCESS_VM_READV,
	"process_vm_writev": unix.SYS_PROCESS_VM_WRITEV,
	"keyctl":            unix.SYS_KEYCTL,
	"add_key":           unix.SYS_ADD_KEY,
	"request_key":       unix.SYS_REQUEST_KEY,
	"bpf":               unix.SYS_BPF,
	"perf_event_open":   unix.SYS_PERF_EVENT_OPEN,
	"io_uring_setup":    unix.SYS_IO_URING_SETUP,
	"io_uring_enter":    unix.SYS_IO_URING_ENTER,
	"io_uring_register": unix.SYS_IO_URING_REGISTER,
	"kexec_load":        unix.SYS_KEXEC_LOAD,
	"init_module":       unix.SYS_INIT_MODULE,
	"finit_module":      unix.SYS_FINIT_MODULE,
	"delete_module":     unix.SYS_DELETE_MODULE,
}

// TestFilterDecisions runs the filter in x/net/bpf's virtual machine on
// the calls it must refuse and on ordinary ones.
func TestFilterDecisions(t *testing.T) {
	prog, err := filter()
	if err != nil {
		t.Fatal(err)
	}
	vm, err := bpf.NewVM(prog)
	if err != nil {
		t.Fatal(err)
	}
	const noAF = unix.SECCOMP_RET_ERRNO | uint32(unix.EAFNOSUPPORT)
	type call struct {
		name       string
		arch, nr   uint32
		arg0       uint64
		want       uint32
		onlyForX32 bool
	}
	calls := []call{
		{name: "socket AF_VSOCK", nr: unix.SYS_SOCKET, arg0: unix.AF_VSOCK, want: noAF},
		{name: "socketpair AF_VSOCK", nr: unix.SYS_SOCKETPAIR, arg0: unix.AF_VSOCK, want: noAF},
		{name: "socket AF_VSOCK, high half set", nr: unix.SYS_SOCKET, arg0: 0xffffffff00000000 | unix.AF_VSOCK, want: noAF},
		{name: "socket AF_INET", nr: unix.SYS_SOCKET, arg0: unix.AF_INET, want: retAllow},
		{name: "socket AF_INET, high half set", nr: unix.SYS_SOCKET, arg0: 0xffffffff00000000 | unix.AF_INET, want: retAllow},
		{name: "socketpair AF_UNIX", nr: unix.SYS_SOCKETPAIR, arg0: unix.AF_UNIX, want: retAllow},
		{name: "read", nr: unix.SYS_READ, want: retAllow},
		{name: "write", nr: unix.SYS_WRITE, want: retAllow},
		{name: "connect", nr: unix.SYS_CONNECT, want: retAllow},
		{name: "execve", nr: unix.SYS_EXECVE, want: retAllow},
		{name: "clone", nr: unix.SYS_CLONE, want: retAllow},
		{name: "another architecture", arch: auditArch ^ 1, nr: unix.SYS_READ, want: retKill},
		{name: "another architecture, a refused number", arch: auditArch ^ 1, nr: unix.SYS_PTRACE, want: retKill},
		{name: "x32 read", nr: x32Bit | unix.SYS_READ, want: retEPERM, onlyForX32: true},
		{name: "x32 socket AF_VSOCK", nr: x32Bit | unix.SYS_SOCKET, arg0: unix.AF_VSOCK, want: retEPERM, onlyForX32: true},
	}
	for name, nr := range refusedWithEPERM {
		calls = append(calls, call{name: name, nr: nr, want: retEPERM})
	}
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			if c.onlyForX32 && x32Bit == 0 {
				testenv.Skip(t, "no x32 calls on this architecture")
			}
			if c.arch == 0 {
				c.arch = auditArch
			}
			got, err := vm.Run(seccompData(c.arch, c.nr, c.arg0))
			if err != nil {
				t.Fatal(err)
			}
			if uint32(got) != c.want {
				t.Errorf("%#x, want %#x", uint32(got), c.want)
			}
		})
	}
}

// TestRulesAreReviewed keeps rules and the lists of this file the same:
// a call refused without a test, or a test for a call no longer refused,
// fails.
func TestRulesAreReviewed(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.name] {
			t.Errorf("%s: two rules", r.name)
		}
		seen[r.name] = true
		switch r.name {
		case "socket", "socketpair":
			if r.domain != unix.AF_VSOCK || r.errno != unix.EAFNOSUPPORT {
				t.Errorf("%s: refuses domain %d with %v, want AF_VSOCK with EAFNOSUPPORT", r.name, r.domain, r.errno)
			}
			continue
		}
		nr, ok := refusedWithEPERM[r.name]
		switch {
		case !ok:
			t.Errorf("%s: refused but not in refusedWithEPERM", r.name)
		case nr != r.nr || r.errno != unix.EPERM || r.domain != 0:
			t.Errorf("%s: rule %+v, want nr %d refused with EPERM", r.name, r, nr)
		}
	}
	for name := range refusedWithEPERM {
		if !seen[name] {
			t.Errorf("%s: in refusedWithEPERM but no rule", name)
		}
	}
}
