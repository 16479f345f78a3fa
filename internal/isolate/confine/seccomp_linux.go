package confine

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// rule refuses one system call with errno; with domain set, only when
// its first argument (a socket's address family) is that domain.
type rule struct {
	name   string
	nr     uint32
	errno  unix.Errno
	domain uint32 // 0: any call
}

// rules are every system call the filter refuses; all others are allowed.
// They are what the namespaces do not cover: tracing and reading other
// processes, the kernel keyring, BPF and perf, io_uring (it opens sockets
// and files past this table), loading code into the kernel, and AF_VSOCK
// (a way to the hypervisor's host that no network namespace covers). The
// numbers are this GOARCH's.
var rules = []rule{
	{"ptrace", unix.SYS_PTRACE, unix.EPERM, 0},
	{"process_vm_readv", unix.SYS_PROCESS_VM_READV, unix.EPERM, 0},
	{"process_vm_writev", unix.SYS_PROCESS_VM_WRITEV, unix.EPERM, 0},
	{"keyctl", unix.SYS_KEYCTL, unix.EPERM, 0},
	{"add_key", unix.SYS_ADD_KEY, unix.EPERM, 0},
	{"request_key", unix.SYS_REQUEST_KEY, unix.EPERM, 0},
	{"bpf", unix.SYS_BPF, unix.EPERM, 0},
	{"perf_event_open", unix.SYS_PERF_EVENT_OPEN, unix.EPERM, 0},
	{"io_uring_setup", unix.SYS_IO_URING_SETUP, unix.EPERM, 0},
	{"io_uring_enter", unix.SYS_IO_URING_ENTER, unix.EPERM, 0},
	{"io_uring_register", unix.SYS_IO_URING_REGISTER, unix.EPERM, 0},
	{"kexec_load", unix.SYS_KEXEC_LOAD, unix.EPERM, 0},
	{"init_module", unix.SYS_INIT_MODULE, unix.EPERM, 0},
	{"finit_module", unix.SYS_FINIT_MODULE, unix.EPERM, 0},
	{"delete_module", unix.SYS_DELETE_MODULE, unix.EPERM, 0},
	{"socket", unix.SYS_SOCKET, unix.EAFNOSUPPORT, unix.AF_VSOCK},
	{"socketpair", unix.SYS_SOCKETPAIR, unix.EAFNOSUPPORT, unix.AF_VSOCK},
}

// Offsets in struct seccomp_data. The filter runs only on little-endian
// architectures (auditArch), where an argument's low 32 bits come first:
// the kernel reads a socket's domain as an int, its low half.
const (
	offNR   = 0
	offArch = 4
	offArg0 = 16
)

const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retKill  = unix.SECCOMP_RET_KILL_PROCESS
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
)

// filter is the program: another architecture's system calls kill the
// process (their numbers mean other calls), x32 calls get EPERM, each
// rule's call its errno, everything else is allowed. The rules are tested
// one after the other, the accumulator holding the call's number between
// them.
func filter() ([]bpf.Instruction, error) {
	if auditArch == 0 {
		return nil, errors.New("building the seccomp filter: no filter for this architecture")
	}
	p := []bpf.Instruction{
		bpf.LoadAbsolute{Off: offArch, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: auditArch, SkipTrue: 1},
		bpf.RetConstant{Val: retKill},
		bpf.LoadAbsolute{Off: offNR, Size: 4},
	}
	if x32Bit != 0 {
		p = append(p, bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: x32Bit, SkipFalse: 1}, bpf.RetConstant{Val: retEPERM})
	}
	for _, r := range rules {
		ret := bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(r.errno)}
		if r.domain == 0 {
			p = append(p, bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: r.nr, SkipTrue: 1}, ret)
			continue
		}
		p = append(p,
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: r.nr, SkipTrue: 4},
			bpf.LoadAbsolute{Off: offArg0, Size: 4},
			bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: r.domain, SkipTrue: 1},
			ret,
			bpf.LoadAbsolute{Off: offNR, Size: 4}, // the number again, for the next rule
		)
	}
	return append(p, bpf.RetConstant{Val: retAllow}), nil
}

// assemble builds the filter in the kernel's form.
func assemble() ([]unix.SockFilter, error) {
	prog, err := filter()
	if err != nil {
		return nil, err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assembling the seccomp filter: %w", err)
	}
	fs := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		fs[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	return fs, nil
}

// install installs the filter on the calling thread; no_new_privs must be
// set (there is no CAP_SYS_ADMIN left).
func install(fs []unix.SockFilter) error {
	fprog := unix.SockFprog{Len: uint16(len(fs)), Filter: &fs[0]}
	if err := unix.Prctl(unix.PR_SET_SECCOMP, unix.SECCOMP_MODE_FILTER, uintptr(unsafe.Pointer(&fprog)), 0, 0); err != nil {
		return fmt.Errorf("installing the seccomp filter: %w", err)
	}
	return nil
}
