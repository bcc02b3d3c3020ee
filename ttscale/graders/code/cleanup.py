"""What a program leaves on the host after its run: folders however deep or locked, and processes."""

from __future__ import annotations

import os
import subprocess


def processes_of(uid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as handle:
                for line in handle:
                    if line.startswith("Uid:"):
                        if int(line.split()[1]) == uid:
                            pids.append(int(entry))
                        break
        except OSError:
            continue
    return pids


def remove_tree(path: str) -> str | None:
    """Remove a folder whatever the program left in it (chains deeper than PATH_MAX or the recursion
    limit, folders without permissions, links); never raises. Returns what was left behind, if anything.
    Walks with one open folder at a time (relative to its descriptor), so depth costs no descriptors."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"could not open {path}: {exc}"
    names: list[str] = []
    try:
        while True:
            try:
                os.fchmod(fd, 0o700)
            except OSError:
                pass
            child = None
            with os.scandir(fd) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        child = entry.name
                        break
                    os.unlink(entry.name, dir_fd=fd)
            if child is not None:
                down = os.open(child, flags, dir_fd=fd)
                os.close(fd)
                fd, _ = down, names.append(child)
                continue
            if not names:
                os.close(fd)
                fd = -1
                os.rmdir(path)
                return None
            up = os.open("..", flags, dir_fd=fd)
            os.close(fd)
            fd = up
            os.rmdir(names.pop(), dir_fd=fd)
    except OSError as exc:
        if fd >= 0:
            os.close(fd)
        subprocess.run(["rm", "-rf", "--", path], capture_output=True, timeout=120)
        return None if not os.path.lexists(path) else f"could not remove {path}: {exc}"


_KEYCTL = {"x86_64": 250, "aarch64": 219}
KEYCTL_CLEAR, KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = 7, -4, -5


def keyring_users() -> set[int]:
    """uids that hold kernel keys or keyrings (/proc/key-users; empty where it cannot be read)."""
    try:
        with open("/proc/key-users") as handle:
            return {int(line.split(":", 1)[0]) for line in handle if line.strip()}
    except (OSError, ValueError):
        return set()


def clear_keyrings(uid: int) -> bool:
    """Empty the kernel keyrings a throw-away uid left behind (keyrings are per uid and survive every
    namespace; the sandbox's seccomp filter keeps programs from making keys, this is the second line).
    Root only; a cheap read of /proc/key-users when there is nothing to clear. True when it cleared."""
    if os.geteuid() != 0 or uid not in keyring_users():
        return False
    import ctypes
    import platform

    number = _KEYCTL.get(platform.machine())
    if number is None:
        return False
    syscall = ctypes.CDLL(None, use_errno=True).syscall
    pid = os.fork()
    if pid == 0:  # the child: become the uid (its keyrings are the caller's), clear them, leave
        code = 1
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for ring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
                syscall(number, KEYCTL_CLEAR, ring)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0
