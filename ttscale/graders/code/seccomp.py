"""A seccomp filter for the program's process: no new namespaces, mounts, keyrings, tracing or other
kernel surfaces a test program never needs. Standalone (mounted beside the sandbox's scripts).

Denied with EPERM: unshare, setns, clone with any CLONE_NEW* flag, mount and the new mount API,
umount2, pivot_root, chroot, keyctl, add_key, request_key, ptrace, process_vm_readv/writev, bpf,
perf_event_open, userfaultfd, io_uring, kexec_load, kernel modules, and socket(AF_VSOCK) (a network
namespace does not cover virtual-machine sockets). clone3 gets ENOSYS (its flags
sit in memory a filter cannot read), so the C library falls back to clone, whose flags it can. A
system call of another ABI (x32, or i386 on x86-64) kills the process. Under bubblewrap the filter
is handed to bwrap (--seccomp), which installs it before the program's interpreter starts; without
it the program's process installs it itself (no_new_privs, prctl) right before the program loads.
Either way every process the program starts inherits it.
"""

import os
import struct

AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
# denied system calls by number, per architecture (asm/unistd.h)
DENIED = {
    "x86_64": {"unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
               "keyctl": 250, "add_key": 248, "request_key": 249, "ptrace": 101, "process_vm_readv": 310,
               "process_vm_writev": 311, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
               "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
               "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
               "mount_setattr": 442, "kexec_load": 246, "init_module": 175, "finit_module": 313,
               "delete_module": 176},
    "aarch64": {"unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
                "keyctl": 219, "add_key": 217, "request_key": 218, "ptrace": 117, "process_vm_readv": 270,
                "process_vm_writev": 271, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
                "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
                "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
                "mount_setattr": 442, "kexec_load": 104, "init_module": 105, "finit_module": 273,
                "delete_module": 106},
}
CLONE = {"x86_64": 56, "aarch64": 220}
CLONE3 = 435
SOCKET = {"x86_64": 41, "aarch64": 198}
AF_VSOCK = 40  # virtual-machine sockets: a network namespace does not cover them
X32_BIT = 0x40000000
# CLONE_NEWTIME | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
CLONE_NEW_FLAGS = 0x00000080 | 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

_LD_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
_ALLOW, _KILL, _ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
EPERM, ENOSYS = 1, 38


def program(machine: str | None = None) -> list[tuple[int, int, int, int]]:
    """The filter's instructions (code, jt, jf, k) for this machine's architecture."""
    machine = machine or os.uname().machine
    if machine not in AUDIT_ARCH:
        raise OSError(f"no seccomp filter for the {machine} architecture")
    denied = sorted(DENIED[machine].values())
    head = [(_LD_ABS, 0, 0, 4), (_JEQ, 1, 0, AUDIT_ARCH[machine]), (_RET, 0, 0, _KILL), (_LD_ABS, 0, 0, 0)]
    checks = []  # (code, k, target) with target "deny" / "nosys" / None (next)
    if machine == "x86_64":
        checks.append((_JGE, X32_BIT, "kill"))
    checks += [(_JEQ, nr, "deny") for nr in denied]
    checks.append((_JEQ, CLONE3, "nosys"))
    body = []
    # after the checks: clone's flags, then socket's address family, then allow; the returns at the end
    tail_start = len(head) + len(checks)
    allow = tail_start + 6
    labels = {"allow": allow, "deny": allow + 1, "nosys": allow + 2, "kill": allow + 3}
    for offset, (code, k, target) in enumerate(checks):
        at = len(head) + offset
        body.append((code, labels[target] - at - 1, 0, k))
    at = tail_start
    body.append((_JEQ, 0, 2, CLONE[machine]))  # not clone: on to the socket check
    body.append((_LD_ABS, 0, 0, 16))  # the low 32 bits of clone's flags
    body.append((_JSET, labels["deny"] - (at + 2) - 1, labels["allow"] - (at + 2) - 1, CLONE_NEW_FLAGS))
    body.append((_JEQ, 0, labels["allow"] - (at + 3) - 1, SOCKET[machine]))  # not socket: allow
    body.append((_LD_ABS, 0, 0, 16))  # socket's address family
    body.append((_JEQ, labels["deny"] - (at + 5) - 1, labels["allow"] - (at + 5) - 1, AF_VSOCK))
    tail = [(_RET, 0, 0, _ALLOW), (_RET, 0, 0, _ERRNO | EPERM), (_RET, 0, 0, _ERRNO | ENOSYS), (_RET, 0, 0, _KILL)]
    return head + body + tail


def compiled(machine: str | None = None) -> bytes:
    """The filter as the kernel (and bubblewrap's --seccomp) takes it: struct sock_filter records."""
    return b"".join(struct.pack("HBBI", c, jt, jf, k) for c, jt, jf, k in program(machine))


def install() -> None:
    """Install the filter on this process (OSError when the kernel refuses)."""
    import ctypes

    raw = compiled()
    buffer = ctypes.create_string_buffer(raw, len(raw))

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = Prog(len(raw) // struct.calcsize("HBBI"), ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(22, 2, ctypes.addressof(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), f"prctl(PR_SET_SECCOMP) failed: {os.strerror(ctypes.get_errno())}")
