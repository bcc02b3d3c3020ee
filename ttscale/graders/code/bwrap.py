"""The bubblewrap command around the program's process: namespaces, read-only system folders,
size-capped private tmpfs folders, a cleared environment."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SCRIPTS_INSIDE = "/tmp/.ttscale"  # where the sandbox's own scripts are mounted, read-only


def bwrap_problem(bwrap: str | None = None) -> str | None:
    """Why bubblewrap cannot isolate here, or None when it can (tried with a real namespace)."""
    path = bwrap or shutil.which("bwrap")
    if not path:
        return "bubblewrap (bwrap) is not installed; Debian/Ubuntu: apt-get install bubblewrap"
    try:
        probe = subprocess.run([path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "true"],
                               capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap did not run: {exc}"
    if probe.returncode != 0:
        return f"bwrap cannot create namespaces here: {probe.stderr.decode(errors='replace').strip()[:300]}"
    return None


def bwrap_prefix(bwrap: str, python: str, scripts: str, inside: str, env: dict[str, str], tmp_mb: int,
                 own_user_namespace: bool) -> list[str]:
    """bwrap's arguments up to `--`: new PID, network, IPC, UTS (and user) namespaces; the system's
    and Python's folders read-only; private tmpfs /tmp, /dev/shm and working folder of tmp_mb each."""
    size = str(tmp_mb << 20)
    cmd = [bwrap, "--die-with-parent", "--new-session", "--clearenv", "--unshare-pid", "--unshare-net",
           "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if own_user_namespace:
        cmd += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    # the private /tmp first: a Python (or venv) under /tmp is mounted on top of it, not hidden by it
    cmd += ["--size", size, "--perms", "1777", "--tmpfs", "/tmp"]
    made: set[str] = {"/tmp"}  # folders that exist inside
    bound: set[str] = set()  # host folders mounted inside

    def mount(kind: str, source: str, target: str) -> None:
        for parent in reversed(Path(target).parents[:-1] if len(Path(target).parents) > 1 else []):
            if str(parent) not in made:  # bwrap would create it 0700, closed to the sandbox user
                made.add(str(parent))
                cmd.extend(["--perms", "0755", "--dir", str(parent)])
        cmd.extend([kind, source, target])
        made.add(target)
        bound.add(target)

    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/alternatives",
                "/etc/ld.so.cache", "/etc/ssl"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.exists(top):
            mount("--ro-bind", top, top)
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(os.path.realpath(python)).parents[1]),
                str(Path(python).parents[1])}
    for prefix in sorted(prefixes):
        if not any(prefix == m or prefix.startswith(m + "/") for m in bound):
            mount("--ro-bind", prefix, prefix)
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--perms", "1777", "--tmpfs", "/dev/shm",
            "--size", size, "--perms", "1777", "--tmpfs", inside,
            "--ro-bind", scripts, SCRIPTS_INSIDE, "--chdir", inside]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--"]


def drop_privileges(setpriv: str, uid: int) -> list[str]:
    """setpriv to a throw-away uid/gid, no groups, no capabilities."""
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
