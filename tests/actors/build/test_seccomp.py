import struct

import pytest

from gantry.actors.build.sandbox.seccomp import build_filter, denied_syscalls


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_filter_denies_each_listed_syscall_and_ends_in_allow(machine):
    prog = build_filter(machine)
    insns = [struct.unpack("=HBBI", prog[i:i + 8]) for i in range(0, len(prog), 8)]
    checked = {k for code, jt, jf, k in insns if code == 0x15}  # JEQ constants
    assert set(denied_syscalls(machine).values()) <= checked
    assert insns[-1] == (0x06, 0, 0, 0x7FFF0000)        # RET ALLOW
    assert insns[2] == (0x06, 0, 0, 0x80000000)         # wrong arch: kill
    assert len(insns) < 4096                             # BPF_MAXINSNS


def test_unknown_machine_is_an_error():
    with pytest.raises(KeyError):
        build_filter("mips")
