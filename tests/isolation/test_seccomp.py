"""The seccomp filter, run on a small classic-BPF interpreter against a table of system calls, and then for
real in a box: what it refuses, what it answers ENOSYS, and that ordinary programs still work."""

from __future__ import annotations

import errno
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from triggerfish.isolation import seccomp
from triggerfish.isolation.box import Box, package_parent, prepare

ALLOW = 0x7FFF0000
EPERM = 0x00050000 | errno.EPERM
ENOSYS = 0x00050000 | errno.ENOSYS
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
OWN_NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS
CLONE_THREAD_FLAGS = 0x003D0F00  # what pthread_create passes to clone


def run_filter(program: bytes, arch: int, nr: int, arg0: int = 0, arg4: int = 0) -> int:
    """Classic BPF as the kernel runs a seccomp filter, for the instructions the filter uses."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, arg0, 0, 0, 0, arg4, 0)
    instructions = [struct.unpack("=HBBI", program[i : i + 8]) for i in range(0, len(program), 8)]
    pc, accumulator = 0, 0
    while True:
        code, jt, jf, k = instructions[pc]
        if code == 0x20:  # ld [k]
            accumulator = struct.unpack_from("=I", data, k)[0]
        elif code == 0x06:  # ret k
            return int(k)
        elif code in (0x15, 0x35, 0x45):  # jeq, jge, jset
            taken = {0x15: accumulator == k, 0x35: accumulator >= k, 0x45: bool(accumulator & k)}[code]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unexpected instruction {code:#x}")
        pc += 1


X86 = seccomp.ARCHES["x86_64"]
ARM = seccomp.ARCHES["aarch64"]

CASES = [
    # (arch, system call, first argument, expected)
    (X86, "unshare", CLONE_NEWUSER, EPERM),
    (X86, "unshare", CLONE_NEWNS, EPERM),
    (X86, "unshare", OWN_NAMESPACES, ALLOW),  # exactly these two: a worker's own /tmp
    (X86, "unshare", OWN_NAMESPACES | 0x40000000, EPERM),  # and a network namespace: no
    (X86, "unshare", OWN_NAMESPACES | 0x400, EPERM),  # anything more, even not a namespace: no
    (X86, "unshare", OWN_NAMESPACES | (1 << 32), EPERM),  # the high half is compared too
    (X86, "unshare", 0x80, EPERM),  # CLONE_NEWTIME
    (X86, "unshare", 0x400, ALLOW),  # CLONE_FILES: no namespace
    (X86, "clone", OWN_NAMESPACES | 0x11, EPERM),  # the exception is unshare's alone
    (X86, "clone", CLONE_THREAD_FLAGS, ALLOW),  # threads
    (X86, "clone", 0x11, ALLOW),  # fork: SIGCHLD
    (X86, "clone", CLONE_NEWUSER | 0x11, EPERM),
    (X86, "clone", 0x20000000, EPERM),  # CLONE_NEWPID
    (X86, "clone3", 0, ENOSYS),
    (X86, "setns", 0, EPERM),
    (X86, "mount", 0, EPERM),
    (X86, "umount2", 0, EPERM),
    (X86, "fsopen", 0, EPERM),
    (X86, "fsmount", 0, EPERM),
    (X86, "fspick", 0, EPERM),
    (X86, "open_tree", 0, EPERM),
    (X86, "mount_setattr", 0, EPERM),
    (X86, "pivot_root", 0, EPERM),
    (X86, "ptrace", 0, EPERM),
    (X86, "bpf", 0, EPERM),
    (X86, "io_uring_setup", 0, EPERM),
    (X86, "keyctl", 0, EPERM),
    (X86, "open_by_handle_at", 0, EPERM),
    (ARM, "unshare", CLONE_NEWUSER, EPERM),
    (ARM, "unshare", OWN_NAMESPACES, ALLOW),
    (ARM, "fsopen", 0, EPERM),
    (ARM, "clone", CLONE_THREAD_FLAGS, ALLOW),
    (ARM, "clone3", 0, ENOSYS),
    (ARM, "mount", 0, EPERM),
    (ARM, "perf_event_open", 0, EPERM),
]
# Ordinary calls by number: read, write, openat, execve, socket (x86_64); read, write, openat, execve (aarch64).
ALLOWED = [(X86, 0), (X86, 1), (X86, 257), (X86, 59), (X86, 41), (ARM, 63), (ARM, 64), (ARM, 56), (ARM, 221)]


@pytest.mark.parametrize(("arch", "name", "arg0", "expected"), CASES)
def test_the_filter_answers_each_system_call_as_the_table_says(
    arch: seccomp.Arch, name: str, arg0: int, expected: int
) -> None:
    machine = next(key for key, value in seccomp.ARCHES.items() if value is arch)
    program = seccomp.filter_program(machine)
    assert program is not None
    assert run_filter(program, arch.audit, arch.numbers[name], arg0) == expected


MOVE_MOUNT = [
    # (fifth argument: flags, expected)
    (0x4, ALLOW),  # MOVE_MOUNT_F_EMPTY_PATH: the fd is the mount (the server's tmpfs)
    (0x0, EPERM),  # a path as the source
    (0x4 | 0x200, EPERM),  # MOVE_MOUNT_BENEATH
    (0x100, EPERM),  # MOVE_MOUNT_SET_GROUP
    (0x4 | (1 << 32), EPERM),
]


@pytest.mark.parametrize(("flags", "expected"), MOVE_MOUNT)
def test_move_mount_is_allowed_only_from_a_mount_fd(flags: int, expected: int) -> None:
    for machine, arch in seccomp.ARCHES.items():
        program = seccomp.filter_program(machine)
        assert program is not None
        assert run_filter(program, arch.audit, arch.numbers["move_mount"], 3, flags) == expected


@pytest.mark.parametrize(("arch", "nr"), ALLOWED)
def test_ordinary_system_calls_are_allowed(arch: seccomp.Arch, nr: int) -> None:
    machine = next(key for key, value in seccomp.ARCHES.items() if value is arch)
    program = seccomp.filter_program(machine)
    assert program is not None
    assert run_filter(program, arch.audit, nr) == ALLOW


def test_other_abis_cannot_step_around_the_filter() -> None:
    program = seccomp.filter_program("x86_64")
    assert program is not None
    i386 = 0x40000003
    assert run_filter(program, i386, 26) == ENOSYS  # ptrace's number on i386
    x32_ptrace = 0x40000000 | 521
    assert run_filter(program, X86.audit, x32_ptrace) == ENOSYS


def test_every_denied_call_has_a_number_on_every_known_machine() -> None:
    names = {*seccomp.DENIED, *seccomp.FLAG_CHECKED, *seccomp.UNSUPPORTED}
    for arch in seccomp.ARCHES.values():
        assert names <= set(arch.numbers)
    assert seccomp.filter_program("s390x") is None


PROBE = """
import ctypes, os, subprocess, threading
libc = ctypes.CDLL(None, use_errno=True)
results = {}
results["unshare_user"] = (libc.unshare(0x10000000), ctypes.get_errno())
results["unshare_net"] = (libc.unshare(0x10000000 | 0x00020000 | 0x40000000), ctypes.get_errno())
done = []
thread = threading.Thread(target=lambda: done.append(1)); thread.start(); thread.join()
results["thread"] = done
results["subprocess"] = subprocess.run(["echo", "hi"], capture_output=True, text=True).stdout
pid = os.fork()
if pid == 0:
    os._exit(7)
results["fork"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(results)
"""


def test_in_a_box_namespaces_are_refused_and_threads_forks_and_subprocesses_work(boxed: None, tmp_path: Path) -> None:
    uid = 1_900_099_990 if os.geteuid() == 0 else None
    done = _run_in_box(Box(uid=uid, gid=uid), PROBE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(
        {
            "unshare_user": (-1, errno.EPERM),
            "unshare_net": (-1, errno.EPERM),
            "thread": [1],
            "subprocess": "hi\n",
            "fork": 7,
        }
    )


OWN_NAMESPACE_PROBE = """
import ctypes, json, os
libc = ctypes.CDLL(None, use_errno=True)
syscall = libc.syscall
syscall.restype = ctypes.c_long
L = ctypes.c_long
numbers = {"fsopen": 430, "fspick": 433, "open_tree": 428, "move_mount": 429, "mount_setattr": 442, "setns": 308,
           "pivot_root": 155}


def errno_of(result):
    return 0 if result >= 0 else ctypes.get_errno()


uid, gid = os.getuid(), os.getgid()
made = errno_of(libc.unshare(0x10000000 | 0x00020000))
for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
    with open(f"/proc/self/{name}", "w") as f:
        f.write(text)
usr = os.open("/usr", os.O_PATH)
seen = {
    "unshare": made,
    "mount": errno_of(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)),
    "bind": errno_of(libc.mount(b"/usr", b"/tmp", None, 0x1000, None)),
    "umount": errno_of(libc.umount2(b"/usr", 2)),
    "fsopen": errno_of(syscall(L(numbers["fsopen"]), b"tmpfs", L(0))),
    "fspick": errno_of(syscall(L(numbers["fspick"]), L(-100), b"/usr", L(0))),
    "open_tree": errno_of(syscall(L(numbers["open_tree"]), L(-100), b"/usr", L(1))),
    "move_mount_path": errno_of(syscall(L(numbers["move_mount"]), L(-100), b"/usr", L(-100), b"/tmp", L(0))),
    "move_mount_locked": errno_of(syscall(L(numbers["move_mount"]), L(usr), b"", L(-100), b"/tmp", L(4))),
    "mount_setattr": errno_of(syscall(L(numbers["mount_setattr"]), L(-100), b"/usr", L(0), None, L(0))),
    "setns": errno_of(syscall(L(numbers["setns"]), L(os.open("/proc/1/ns/mnt", os.O_RDONLY)), L(0))),
    "unshare_net": errno_of(libc.unshare(0x40000000)),
    "pivot_root": errno_of(syscall(L(numbers["pivot_root"]), b"/tmp", b"/tmp")),
    "chroot": errno_of(libc.chroot(b"/tmp")),
}
print(json.dumps(seen))
"""


def test_in_a_box_a_user_and_mount_namespace_of_its_own_can_mount_nothing(root_boxed: None) -> None:
    """The one namespace a box allows (for a worker's /tmp) gives app code no mount, bind, filesystem, or way out:
    every mount call is refused by the filter, and moving a mount of the box is refused by the kernel (locked)."""
    if seccomp.machine() != "x86_64":
        pytest.skip("the probe names x86_64's system call numbers")
    done = _run_in_box(Box(uid=1_900_099_991, gid=1_900_099_991), OWN_NAMESPACE_PROBE)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen.pop("unshare") == 0
    assert seen.pop("move_mount_locked") == errno.EINVAL  # the filter lets it through; the box's mounts are locked
    assert seen == dict.fromkeys(seen, errno.EPERM)


def _run_in_box(box: Box, probe: str) -> subprocess.CompletedProcess[str]:
    """Run the Python `probe` in `box`, as the runtime starts a boxed process; its output as text."""
    launch = prepare(box, [sys.executable, "-s", "-c", probe], env=_env())
    try:
        return subprocess.run(
            launch.argv,
            pass_fds=launch.pass_fds,
            env=launch.env,
            capture_output=True,
            text=True,
            timeout=60,
            **launch.popen,
        )
    finally:
        launch.started()


def _env() -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": package_parent()}
