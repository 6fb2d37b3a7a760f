"""The box's seccomp filter: a classic BPF program that refuses the system calls a handler never needs.

    program = filter_program("x86_64")   # bytes for `bwrap --seccomp FD`; None on an unknown machine

Namespaces already keep a boxed process away from other processes and
files; the filter narrows what it can ask the shared kernel for, where
kernel bugs have most often been found. It refuses, with EPERM:

- new namespaces (`unshare`, `setns`, and `clone` with a `CLONE_NEW*` flag):
  a user namespace would hand the process capabilities inside it, and with
  them kernel code that is otherwise reachable by root only. One exception:
  `unshare(CLONE_NEWUSER | CLONE_NEWNS)`, those two flags exactly, which a
  worker needs to attach the /tmp the server made for it (see
  triggerfish.isolation.mount_api); with every mount call but `move_mount`
  refused, such a namespace holds nothing it could mount;
- mounting and changing roots (`mount`, `umount2`, `pivot_root`, `chroot`,
  the new mount API but `move_mount` of a mount fd, flags exactly
  `MOVE_MOUNT_F_EMPTY_PATH`: the server's tmpfs onto /tmp);
- the kernel keyring, BPF, perf events, userfaultfd and io_uring: large
  attack surfaces that no Python handler needs;
- loading kernel modules, kexec, swap, reboot, the kernel log, accounting,
  quotas;
- `ptrace`, `process_vm_readv/writev`, and file handles (`open_by_handle_at`).

`clone3` gets ENOSYS, since its flags sit in memory a filter cannot read:
the C library then falls back to `clone`, whose flags it can. Calls made
under another ABI (32-bit, x32) get ENOSYS too, so the filter cannot be
stepped around. Everything else is allowed: this is a deny list, kept
short so that ordinary programs (pip, compilers, subprocesses) work.

Only x86_64 and aarch64 are known; elsewhere `filter_program` returns None
and the box runs without a filter (the runner logs it).
"""

from __future__ import annotations

import errno
import platform
import struct
from dataclasses import dataclass

# Classic BPF instructions (linux/filter.h, linux/bpf_common.h).
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
# Return values (linux/seccomp.h).
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO = 0x00050000
# Offsets in struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
_NR = 0
_ARCH = 4
_ARG0_LOW = 16  # the low 32 bits of args[0] on a little-endian machine
_ARG0_HIGH = 20
_ARG4_LOW = 16 + 4 * 8
_ARG4_HIGH = _ARG4_LOW + 4
#: CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET.
NEW_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
_X32_SYSCALL_BIT = 0x40000000

#: System calls refused with EPERM, whatever their arguments.
DENIED = (
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "init_module",
    "finit_module",
    "delete_module",
    "kexec_load",
    "kexec_file_load",
    "swapon",
    "swapoff",
    "reboot",
    "syslog",
    "acct",
    "quotactl",
    "lookup_dcookie",
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "name_to_handle_at",
    "open_by_handle_at",
)
#: System calls whose arguments the filter reads: `clone` and `unshare` (namespace flags), `move_mount` (its flags).
FLAG_CHECKED = ("clone", "unshare", "move_mount")
#: The one `unshare` that is allowed: a user namespace and a mount namespace owned by it, nothing else.
OWN_USER_AND_MOUNT = 0x10000000 | 0x00020000
#: CLONE_NEWTIME: a namespace flag only `unshare` and `clone3` take (for `clone` the bit is the exit signal's).
_CLONE_NEWTIME = 0x00000080
#: `move_mount`'s flags (its fifth argument) must be exactly this: the source is a mount fd, not a path.
MOVE_MOUNT_F_EMPTY_PATH = 0x00000004
#: System calls answered with ENOSYS, so that the C library falls back to one the filter can check.
UNSUPPORTED = ("clone3",)


@dataclass(frozen=True, slots=True)
class Arch:
    """A machine the filter knows: its AUDIT_ARCH value and its system call numbers."""

    audit: int
    numbers: dict[str, int]
    #: Whether system calls with the x32 bit set reach the kernel under the same AUDIT_ARCH (x86_64).
    x32: bool = False


# From the kernel's uapi headers: asm/unistd_64.h (x86_64) and asm-generic/unistd.h (aarch64).
ARCHES: dict[str, Arch] = {
    "x86_64": Arch(
        audit=0xC000003E,
        x32=True,
        numbers={
            "clone": 56,
            "ptrace": 101,
            "syslog": 103,
            "pivot_root": 155,
            "chroot": 161,
            "acct": 163,
            "mount": 165,
            "umount2": 166,
            "swapon": 167,
            "swapoff": 168,
            "reboot": 169,
            "init_module": 175,
            "delete_module": 176,
            "quotactl": 179,
            "lookup_dcookie": 212,
            "kexec_load": 246,
            "add_key": 248,
            "request_key": 249,
            "keyctl": 250,
            "unshare": 272,
            "perf_event_open": 298,
            "name_to_handle_at": 303,
            "open_by_handle_at": 304,
            "setns": 308,
            "process_vm_readv": 310,
            "process_vm_writev": 311,
            "finit_module": 313,
            "kexec_file_load": 320,
            "bpf": 321,
            "userfaultfd": 323,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "clone3": 435,
            "mount_setattr": 442,
        },
    ),
    "aarch64": Arch(
        audit=0xC00000B7,
        numbers={
            "lookup_dcookie": 18,
            "umount2": 39,
            "mount": 40,
            "pivot_root": 41,
            "chroot": 51,
            "quotactl": 60,
            "acct": 89,
            "unshare": 97,
            "kexec_load": 104,
            "init_module": 105,
            "delete_module": 106,
            "syslog": 116,
            "ptrace": 117,
            "reboot": 142,
            "add_key": 217,
            "request_key": 218,
            "keyctl": 219,
            "clone": 220,
            "swapon": 224,
            "swapoff": 225,
            "perf_event_open": 241,
            "name_to_handle_at": 264,
            "open_by_handle_at": 265,
            "setns": 268,
            "process_vm_readv": 270,
            "process_vm_writev": 271,
            "finit_module": 273,
            "bpf": 280,
            "userfaultfd": 282,
            "kexec_file_load": 294,
            "io_uring_setup": 425,
            "io_uring_enter": 426,
            "io_uring_register": 427,
            "open_tree": 428,
            "move_mount": 429,
            "fsopen": 430,
            "fsconfig": 431,
            "fsmount": 432,
            "fspick": 433,
            "clone3": 435,
            "mount_setattr": 442,
        },
    ),
}
_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


def machine() -> str:
    """This machine's name as ARCHES spells it ("x86_64", "aarch64", or whatever else `uname -m` says)."""
    name = platform.machine().lower()
    return _ALIASES.get(name, name)


def filter_program(arch: str | None = None) -> bytes | None:
    """The filter as an array of `struct sock_filter` (what `bwrap --seccomp` reads); None for an unknown arch.

    Example: `filter_program("x86_64")` is 8 bytes per instruction; `filter_program("s390x")` is None.
    """
    known = ARCHES.get(machine() if arch is None else arch)
    if known is None:
        return None
    return b"".join(struct.pack("=HBBI", *instruction) for instruction in _instructions(known))


def _instructions(arch: Arch) -> list[tuple[int, int, int, int]]:
    """(code, jump if true, jump if false, k) tuples; jumps are relative, resolved from labels here."""
    # The body, with jump targets named; resolved below once every position is known.
    body: list[tuple[int, str | int, str | int, int]] = [
        (_LD_W_ABS, 0, 0, _ARCH),
        (_JEQ_K, 0, "enosys", arch.audit),
        (_LD_W_ABS, 0, 0, _NR),
    ]
    if arch.x32:
        body.append((_JGE_K, "enosys", 0, _X32_SYSCALL_BIT))
    for name in DENIED:
        body.append((_JEQ_K, "eperm", 0, arch.numbers[name]))
    for name in UNSUPPORTED:
        body.append((_JEQ_K, "enosys", 0, arch.numbers[name]))
    body.append((_JEQ_K, "clone", 0, arch.numbers["clone"]))
    body.append((_JEQ_K, "unshare", 0, arch.numbers["unshare"]))
    body.append((_JEQ_K, "move_mount", 0, arch.numbers["move_mount"]))
    body.append((_RET_K, 0, 0, _RET_ALLOW))
    labels: dict[str, int] = {"clone": len(body)}
    body.append((_LD_W_ABS, 0, 0, _ARG0_LOW))
    body.append((_JSET_K, "eperm", "allow", NEW_NAMESPACE_FLAGS))
    # unshare: its flags compared whole (both halves of the 64-bit argument), so exactly the two namespaces.
    labels["unshare"] = len(body)
    body.append((_LD_W_ABS, 0, 0, _ARG0_HIGH))
    body.append((_JEQ_K, 0, "eperm", 0))
    body.append((_LD_W_ABS, 0, 0, _ARG0_LOW))
    body.append((_JEQ_K, "allow", 0, OWN_USER_AND_MOUNT))
    body.append((_JSET_K, "eperm", "allow", NEW_NAMESPACE_FLAGS | _CLONE_NEWTIME))
    # move_mount: only a mount fd as the source, no other mode (no MOVE_MOUNT_BENEATH, no SET_GROUP).
    labels["move_mount"] = len(body)
    body.append((_LD_W_ABS, 0, 0, _ARG4_HIGH))
    body.append((_JEQ_K, 0, "eperm", 0))
    body.append((_LD_W_ABS, 0, 0, _ARG4_LOW))
    body.append((_JEQ_K, "allow", "eperm", MOVE_MOUNT_F_EMPTY_PATH))
    labels["allow"] = len(body)
    body.append((_RET_K, 0, 0, _RET_ALLOW))
    labels["eperm"] = len(body)
    body.append((_RET_K, 0, 0, _RET_ERRNO | errno.EPERM))
    labels["enosys"] = len(body)
    body.append((_RET_K, 0, 0, _RET_ERRNO | errno.ENOSYS))

    def offset(here: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        jump = labels[target] - here - 1
        assert 0 <= jump <= 255, "a classic BPF jump reaches at most 255 instructions ahead"
        return jump

    return [(code, offset(i, jt), offset(i, jf), k) for i, (code, jt, jf, k) in enumerate(body)]
