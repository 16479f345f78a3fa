package confine

import (
	"encoding/binary"
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
	run := func(arch, nr uint32, arg0 uint64) uint32 {
		t.Helper()
		r, err := vm.Run(seccompData(arch, nr, arg0))
		if err != nil {
			t.Fatal(err)
		}
		return uint32(r)
	}
	for _, d := range denied {
		if got := run(auditArch, d.nr, 0); got != retEPERM {
			t.Errorf("%s: %#x, want EPERM", d.name, got)
		}
	}
	for _, nr := range socketCalls {
		if got := run(auditArch, nr, unix.AF_VSOCK); got != retNoAF {
			t.Errorf("socket call %d of AF_VSOCK: %#x, want EAFNOSUPPORT", nr, got)
		}
		if got := run(auditArch, nr, unix.AF_INET|0xffffffff00000000); got != retAllow {
			t.Errorf("socket call %d of AF_INET: %#x, want allowed", nr, got)
		}
	}
	for _, nr := range []uint32{unix.SYS_READ, unix.SYS_WRITE, unix.SYS_CONNECT, unix.SYS_EXECVE, unix.SYS_CLONE} {
		if got := run(auditArch, nr, 0); got != retAllow {
			t.Errorf("call %d: %#x, want allowed", nr, got)
		}
	}
	if got := run(auditArch^1, unix.SYS_READ, 0); got != retKill {
		t.Errorf("another architecture: %#x, want the process killed", got)
	}
	if x32Bit != 0 {
		if got := run(auditArch, x32Bit|unix.SYS_READ, 0); got != retEPERM {
			t.Errorf("an x32 call: %#x, want EPERM", got)
		}
	}
}
