"""A seccomp filter for build sandboxes, as the classic-BPF program bubblewrap's --seccomp takes.

A deny list: syscalls a build has no business making (kernel modules, mounts, namespaces,
tracing other processes, clocks, keyrings, bpf, io_uring) fail with EPERM; everything else is
allowed. `clone` with any CLONE_NEW* flag fails with EPERM. `clone3` passes its flags in memory,
where a filter cannot look, so it answers ENOSYS and libc falls back to `clone`. Foreign-
architecture syscalls (x32, i386 on x86_64) are refused outright.
"""
from __future__ import annotations

import errno
import platform
import struct

# BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
_RET_KILL_PROCESS = 0x80000000
_OFF_NR, _OFF_ARCH, _OFF_ARG0_LO = 0, 4, 16   # struct seccomp_data; both machines are little-endian
CLONE_NEW_FLAGS = (0x00020000 | 0x02000000 | 0x04000000 | 0x08000000   # NS, CGROUP, UTS, IPC
                   | 0x10000000 | 0x20000000 | 0x40000000)               # USER, PID, NET

_ARCH = {
    # machine: (AUDIT_ARCH, denied syscall numbers, clone's number)
    "x86_64": (0xC000003E, {
        "ptrace": 101, "personality": 135, "pivot_root": 155, "chroot": 161, "acct": 163,
        "settimeofday": 164, "mount": 165, "umount2": 166, "swapon": 167, "swapoff": 168,
        "reboot": 169, "sethostname": 170, "setdomainname": 171, "iopl": 172, "ioperm": 173,
        "init_module": 175, "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212,
        "clock_settime": 227, "kexec_load": 246, "add_key": 248, "request_key": 249,
        "keyctl": 250, "unshare": 272, "perf_event_open": 298, "open_by_handle_at": 304,
        "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
        "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    }, 56),
    "aarch64": (0xC00000B7, {
        "ptrace": 117, "personality": 92, "pivot_root": 41, "chroot": 51, "acct": 89,
        "settimeofday": 170, "mount": 40, "umount2": 39, "swapon": 224, "swapoff": 225,
        "reboot": 142, "sethostname": 161, "setdomainname": 162, "init_module": 105,
        "delete_module": 106, "quotactl": 60, "lookup_dcookie": 18, "clock_settime": 112,
        "kexec_load": 104, "add_key": 217, "request_key": 218, "keyctl": 219, "unshare": 97,
        "perf_event_open": 241, "open_by_handle_at": 265, "setns": 268,
        "process_vm_readv": 270, "process_vm_writev": 271, "finit_module": 273,
        "kexec_file_load": 294, "bpf": 280, "userfaultfd": 282, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
    }, 220),
}
CLONE3 = 435   # the same on both
_X32_BIT = 0x40000000


def denied_syscalls(machine: str | None = None) -> dict[str, int]:
    return dict(_ARCH[machine or platform.machine()][1])


def clone_number(machine: str | None = None) -> int:
    return _ARCH[machine or platform.machine()][2]


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def build_filter(machine: str | None = None) -> bytes:
    """The BPF program as bytes (struct sock_filter[]); raises KeyError on an unknown machine."""
    machine = machine or platform.machine()
    audit_arch, numbers, clone = _ARCH[machine]
    eperm = _RET_ERRNO | errno.EPERM
    prog = [
        _insn(_LD_W_ABS, 0, 0, _OFF_ARCH),
        _insn(_JEQ_K, 1, 0, audit_arch),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),
        _insn(_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if machine == "x86_64":
        prog += [_insn(_JGE_K, 0, 1, _X32_BIT), _insn(_RET_K, 0, 0, eperm)]
    for nr in sorted(set(numbers.values())):
        prog += [_insn(_JEQ_K, 0, 1, nr), _insn(_RET_K, 0, 0, eperm)]
    prog += [_insn(_JEQ_K, 0, 1, CLONE3), _insn(_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS)]
    prog += [
        _insn(_JEQ_K, 0, 3, clone),
        _insn(_LD_W_ABS, 0, 0, _OFF_ARG0_LO),           # clone's flags (the low word holds them all)
        _insn(_JSET_K, 0, 1, CLONE_NEW_FLAGS),
        _insn(_RET_K, 0, 0, eperm),
    ]
    prog.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    return b"".join(prog)
