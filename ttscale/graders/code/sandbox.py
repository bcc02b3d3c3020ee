"""Run untrusted programs against their tests: the program in one process, the tests in another.

The program's process (program_server.py) loads the program and answers calls; the tests' process
(test_runner.py) runs the problem's setup, probes and tests and calls the program through a pipe that
carries plain data only (wire.py). Nothing the program does to its own interpreter — rebinding
builtins, patching `json`, reading its own file descriptors or frames, exiting early — reaches the
tests' code, their expected values or the report: a pass means the tests' process saw every test pass
on plain values it compared itself, and the program's process then exited cleanly (code 0) in time.

Layers around the program's process, outermost first:
- bubblewrap (`isolation="bwrap"`): new PID, network, IPC, UTS, mount (and user) namespaces; only the
  system's and Python's folders, read-only; a private size-capped /tmp, /dev/shm and working folder
  (tmpfs: nothing the program writes lands on the host); no network (a fresh loopback); the
  environment cleared; everything the program started dies with the namespace.
- never root: as root, each run gets its own throw-away uid from a block the Sandbox claims with a
  lock file (so two sandboxes never share one); where that is impossible (no bubblewrap and an interpreter other users
  cannot run, e.g. under /root), the Sandbox refuses to start unless `allow_root=True`.
- a fresh cgroup per run where this machine lets us make one (v2, or v1 memory + pids): memory and
  process count for the program's whole process tree. Otherwise per-process limits only (a warning says so).
- limits set before the program runs: address space, CPU seconds, file size, processes, open files,
  no core dumps. Output goes through pipes: the last `output_tail` characters are kept, the rest is cut
  (a program that prints 100 MB is not an error for it).
- a wall-clock timeout, then SIGKILL to both process groups (and to every process of the slot's uid).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue
import secrets
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ISOLATIONS = ("auto", "bwrap", "none")
HERE = Path(__file__).parent
SCRIPTS = ("program_server.py", "test_runner.py", "wire.py")
UID_RANGE = (200_000, 2_000_000_000)  # throw-away uids are drawn from here (root only)
UID_BLOCK = 1 << 16  # uids one Sandbox uses, one per run, round robin


@dataclass(frozen=True)
class Limits:
    """Per program. timeout: wall-clock seconds for the program and all its tests."""

    timeout: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 1024  # per process (address space), and for the whole tree where a cgroup exists
    file_size_mb: int = 16
    processes: int = 32  # beyond those its user id already runs
    open_files: int = 64
    output_tail: int = 2000  # characters of stdout / stderr kept in the verdict
    tmp_mb: int = 64  # bubblewrap: size of each private tmpfs (/tmp, the working folder, /dev/shm)


@dataclass
class TestVerdict:
    status: str  # pass | fail | error | timeout
    error: str | None = None


@dataclass
class Verdict:
    """pass: the tests' process reported that every test ran and passed, and the program's process
    exited cleanly in time. fail: a test failed. timeout: killed by the wall clock or the CPU limit.
    error: the program did not load, the tests' setup failed, or a process ended without a verdict."""

    status: str
    tests: list[TestVerdict] = field(default_factory=list)
    reason: str | None = None
    probes: list[str | None] = field(default_factory=list)  # repr of each probe's value ("!Error" if it raised)
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    seconds: float = 0.0
    isolation: str = "none"

    @property
    def passed(self) -> bool:
        return self.status == "pass"


class SandboxError(RuntimeError):
    """The sandbox itself cannot run (e.g. bubblewrap asked for but not usable): never a verdict."""


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


def _processes_of(uid: int) -> list[int]:
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


def _world_executable(path: str) -> bool:
    """Whether any user may run this interpreter (every folder above it searchable by others)."""
    real = os.path.realpath(path)
    parts = Path(real).parents
    return all(os.stat(p).st_mode & 0o001 for p in parts) and bool(os.stat(real).st_mode & 0o005)


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


class _Cgroups:
    """A fresh cgroup per run (memory and process count for the program's whole tree), where the
    machine lets us make one: cgroup v2 with the memory and pids controllers, or v1 memory + pids.

    Per run, not per slot: bubblewrap's processes are reaped by the system's init, sometimes a second
    or more after the run, and until then they still count against pids.max. A run's cgroup is removed
    once it is empty (retried at later runs and at close)."""

    def __init__(self, memory_mb: int, processes: int):
        self.memory_mb, self.processes = memory_mb, processes
        self.problem: str | None = None
        self.prefix = f"ttscale-{os.getpid()}-{secrets.token_hex(4)}"
        self.roots = self._roots()
        self.pending: list[str] = []  # cgroups of finished runs, removed when their last process is reaped
        self._lock = threading.Lock()
        if not self.roots:
            self.problem = "no writable cgroup with memory and pids controllers"
            return
        try:  # one trial run's worth, to refuse early rather than per program
            self.release(self.create("probe"))
        except OSError as exc:
            self.problem = f"could not set up a cgroup: {exc}"
            self.roots = []

    @staticmethod
    def _write(path: str, name: str, value: str, optional: bool = False) -> None:
        try:
            with open(os.path.join(path, name), "w") as handle:
                handle.write(value)
        except OSError:
            if not optional:
                raise

    def _roots(self) -> list[tuple[str, str]]:
        base = "/sys/fs/cgroup"
        try:
            own = Path("/proc/self/cgroup").read_text().splitlines()
        except OSError:
            return []
        v2 = next((line.split(":", 2)[2] for line in own if line.startswith("0::")), None)
        if v2 is not None and os.path.exists(os.path.join(base, "cgroup.controllers")):
            root = os.path.join(base, v2.lstrip("/"))
            try:
                controllers = Path(root, "cgroup.subtree_control").read_text().split()
            except OSError:
                controllers = []
            if {"memory", "pids"} <= set(controllers) and os.access(root, os.W_OK):
                return [("v2", root)]
        found = []
        for kind in ("memory", "pids"):
            mine = next((line.split(":", 2)[2] for line in own if line.split(":")[1:2] == [kind]), None)
            root = os.path.join(base, kind, (mine or "/").lstrip("/"))
            if mine is None or not os.access(root, os.W_OK):
                return []
            found.append((kind, root))
        return found

    def create(self, run: str) -> list[str]:
        made = []
        try:
            for kind, root in self.roots:
                path = os.path.join(root, f"{self.prefix}-{run}")
                os.mkdir(path)
                made.append(path)
                if kind in ("v2", "memory"):
                    limit = str(self.memory_mb << 20)
                    self._write(path, "memory.max" if kind == "v2" else "memory.limit_in_bytes", limit)
                    if kind == "v2":
                        self._write(path, "memory.swap.max", "0", optional=True)
                if kind in ("v2", "pids"):
                    # the program's own processes, plus bubblewrap's, setpriv's and the shell's
                    self._write(path, "pids.max", str(self.processes + 8))
        except OSError:
            self.release(made)
            raise
        return made

    @staticmethod
    def enter_command(paths: list[str]) -> list[str]:
        """A prefix that moves the command into the run's cgroups before it runs (children inherit)."""
        procs = " ".join(f"'{os.path.join(p, 'cgroup.procs')}'" for p in paths)
        return ["/bin/sh", "-c", f'for f in {procs}; do echo $$ > "$f" || exit 125; done; exec "$@"', "sh"]

    @staticmethod
    def kill(paths: list[str], wait: float = 2.0) -> None:
        """SIGKILL whatever is left in the run's cgroups, until none is listed."""
        deadline = time.monotonic() + wait
        while True:
            left = []
            for path in paths:
                try:
                    left += Path(path, "cgroup.procs").read_text().split()
                except OSError:
                    continue
            if not left or time.monotonic() > deadline:
                return
            for pid in left:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            time.sleep(0.005)

    @staticmethod
    def oom_count(paths: list[str]) -> int:
        total = 0
        for path in paths:
            for name, key in (("memory.events", "oom_kill"), ("memory.failcnt", None)):
                try:
                    text = Path(path, name).read_text()
                except OSError:
                    continue
                if key is None:
                    total += int(text.strip() or 0)
                else:
                    total += sum(int(line.split()[1]) for line in text.splitlines() if line.startswith(key + " "))
        return total

    def release(self, paths: list[str]) -> None:
        """Remove finished runs' cgroups; those still holding an unreaped process wait for a later try."""
        with self._lock:
            still = []
            for path in [*self.pending, *paths]:
                try:
                    os.rmdir(path)
                except FileNotFoundError:
                    pass
                except OSError:
                    still.append(path)
            self.pending = still

    def close(self, wait: float = 5.0) -> None:
        deadline = time.monotonic() + wait
        self.release([])
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.1)
            self.release([])


@dataclass
class _Streams:
    """Output of both processes, drained as it comes: a capped tail each, the report in full (capped)."""

    tail_bytes: int
    buffers: dict[str, bytearray] = field(default_factory=dict)
    report: bytearray = field(default_factory=bytearray)

    def add(self, name: str, data: bytes) -> None:
        if name == "report":
            if len(self.report) < (16 << 20):
                self.report += data
            return
        buf = self.buffers.setdefault(name, bytearray())
        buf += data
        if len(buf) > 2 * self.tail_bytes:
            del buf[: len(buf) - self.tail_bytes]

    def text(self, name: str, chars: int) -> str:
        return bytes(self.buffers.get(name, b"")[-self.tail_bytes:]).decode(errors="replace")[-chars:]


class Sandbox:
    """Runs programs with their tests. Thread-safe; at most `parallel` programs at once.

    isolation: "bwrap" (refuse to run without it), "none" (limits only), or "auto" (bwrap when it
    works here, else limits only, with a warning). `python` is the interpreter of both processes.
    allow_root: run programs as root where no throw-away user is possible (never by default).
    """

    def __init__(self, isolation: str = "auto", limits: Limits | None = None, parallel: int | None = None,
                 python: str | None = None, bwrap: str | None = None, allow_root: bool = False,
                 cgroups: bool = True):
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation={isolation!r}; choose one of: {', '.join(ISOLATIONS)}")
        self.limits = limits or Limits()
        self.python = python or sys.executable
        self.parallel = max(1, parallel or os.cpu_count() or 1)
        self.bwrap = bwrap or shutil.which("bwrap")
        self.as_root = os.geteuid() == 0
        if isolation in ("auto", "bwrap"):
            problem = bwrap_problem(self.bwrap)
            if problem and isolation == "bwrap":
                raise SandboxError(f"isolation=bwrap: {problem}")
            if problem:
                log.warning("code sandbox without namespaces (limits only): %s", problem)
            isolation = "none" if problem else "bwrap"
        self.isolation = isolation
        # as root, each slot runs under its own throw-away uid: with bwrap through setpriv inside the
        # namespace; without it only when other users can run the interpreter (one under /root cannot)
        self.setpriv = shutil.which("setpriv")
        self.drop_uid = self.as_root and (bool(self.setpriv) if isolation == "bwrap" else _world_executable(self.python))
        self.runs_as_root = self.as_root and not self.drop_uid
        if self.runs_as_root and not allow_root:
            raise SandboxError(
                f"isolation={isolation} as root would run generated programs as root ({self.python} cannot be run "
                "by another user" + ("" if isolation == "none" else ", and setpriv is missing") + "): install "
                "bubblewrap (apt-get install bubblewrap), or use a Python other users can run, or pass "
                "allow_root=True (grader.code_allow_root=true) to accept the risk")
        if self.runs_as_root:
            log.warning("code sandbox: programs run AS ROOT (allow_root=True): a program can change this machine")
        # throw-away uids: a block of UID_BLOCK claimed for this Sandbox (a lock file, so no other
        # Sandbox, in this process or another, uses it); each run takes the next uid of the block, so a
        # run never shares a uid (nor its process count) with the still-exiting processes of the last
        self.uid_block = None
        if self.drop_uid:
            low, high, lock = self._claim_uid_block()
            self.uid_block = (low, high)
            weakref.finalize(self, lock.unlink, True)
        self._runs = itertools.count()
        self._cgroups = _Cgroups(self.limits.memory_mb, self.limits.processes) if (cgroups and self.as_root) else None
        self.cgroup_problem = ("not root" if self._cgroups is None else self._cgroups.problem)
        if self._cgroups is not None and self._cgroups.problem:
            log.info("code sandbox without cgroups (per-process limits only): %s", self._cgroups.problem)
        if self._cgroups is not None and not self._cgroups.problem:
            weakref.finalize(self, self._cgroups.close)
        else:
            self._cgroups = None
        self._scripts = tempfile.mkdtemp(prefix="ttscale-sbx-scripts-")  # a copy other users can read
        for name in SCRIPTS:
            shutil.copy(HERE / name, os.path.join(self._scripts, name))
        os.chmod(self._scripts, 0o755)
        weakref.finalize(self, shutil.rmtree, self._scripts, True)
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.parallel):
            self._slots.put(slot)

    @staticmethod
    def _claim_uid_block() -> tuple[int, int, Path]:
        """A free block of uids, held by a lock file naming this process until it exits."""
        folder = Path(tempfile.gettempdir()) / "ttscale-uid-blocks"
        folder.mkdir(mode=0o700, exist_ok=True)
        blocks = (UID_RANGE[1] - UID_RANGE[0]) // UID_BLOCK
        for _ in range(100):
            index = secrets.randbelow(blocks)
            lock = folder / str(index)
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                try:
                    holder = int(lock.read_text() or 0)
                    os.kill(holder, 0)  # still alive: the block is taken
                    continue
                except (ValueError, ProcessLookupError, FileNotFoundError):
                    lock.unlink(missing_ok=True)  # a dead holder's block: try it again next round
                    continue
                except PermissionError:
                    continue
            with os.fdopen(fd, "w") as handle:
                handle.write(str(os.getpid()))
            return UID_RANGE[0] + index * UID_BLOCK, UID_RANGE[0] + (index + 1) * UID_BLOCK, lock
        raise SandboxError("could not claim a block of throw-away uids")

    def run_uid(self) -> int:
        """The uid of the next run (as root), or this process's uid."""
        if not self.drop_uid:
            return os.getuid()
        low, high = self.uid_block
        return low + next(self._runs) % (high - low)

    def describe(self) -> dict:
        """What protects a run, for summaries: isolation, user, cgroups."""
        return {"isolation": self.isolation, "runs_as_root": self.runs_as_root,
                "slot_user": "throw-away uid" if self.drop_uid else ("root" if self.as_root else "your user"),
                "cgroups": self._cgroups is not None and not self._cgroups.problem}

    # -- one run ---------------------------------------------------------------------------------
    def run(self, program: str, tests: Sequence[str] = (), setup: str = "", limits: Limits | None = None,
            probes: Sequence[str] = (), program_setup: str = "") -> Verdict:
        """Run `program` (then `program_setup`) in its process, and `setup`, each probe expression and
        each test snippet in the tests' process, where the program's top-level functions and classes are
        proxies."""
        limits = limits or self.limits
        if program_setup:
            program = f"{program}\n\n{program_setup}\n"
        slot = self._slots.get()
        try:
            return self._run(slot, program, list(tests), setup, limits, list(probes))
        finally:
            self._slots.put(slot)

    def _run(self, slot: int, program: str, tests: list[str], setup: str, limits: Limits, probes: list[str]) -> Verdict:
        uid = self.run_uid()
        workdir = None if self.isolation == "bwrap" else tempfile.mkdtemp(prefix="ttscale-sbx-")
        started = time.perf_counter()
        nonce = secrets.token_hex(16)
        try:
            if workdir and self.drop_uid:
                os.chown(workdir, uid, uid)
            if workdir:
                os.chmod(workdir, 0o700)
            processes = limits.processes + (0 if self.drop_uid or self.isolation == "bwrap" else len(_processes_of(uid)))
            program_limits = {"memory_bytes": limits.memory_mb << 20, "cpu_seconds": limits.cpu_seconds,
                              "file_size_bytes": limits.file_size_mb << 20, "processes": processes,
                              "open_files": limits.open_files}
            job = {"nonce": nonce, "setup": setup, "tests": tests, "probes": probes,
                   "limits": {"memory_bytes": (limits.memory_mb + 512) << 20, "cpu_seconds": limits.cpu_seconds}}
            streams, timed_out, codes, oom = self._spawn(slot, uid, workdir, program, program_limits, job, limits)
        finally:
            cleanup = remove_tree(workdir) if workdir else None
        if cleanup:
            log.warning("code sandbox: %s", cleanup)
        events = self._events(bytes(streams.report), nonce)
        verdict = self._verdict(events, len(tests), timed_out, codes, oom, limits)
        verdict.probes = self._probes(events, len(probes))
        verdict.stdout = streams.text("program_out", limits.output_tail)
        verdict.stderr = streams.text("program_err", limits.output_tail)
        if verdict.status == "error" and not verdict.reason:
            verdict.reason = "the tests' process ended without a verdict: " + (streams.text("tests_err", 300) or "no output")
        verdict.returncode = codes[0]
        verdict.seconds = time.perf_counter() - started
        verdict.isolation = self.isolation
        return verdict

    def _program_command(self, workdir: str | None, uid: int, request_fd: int, response_fd: int, limits: dict,
                         tmp_mb: int) -> list[str]:
        script_args = [str(request_fd), str(response_fd), json.dumps(limits)]
        if self.isolation == "none":
            return [self.python, "-I", "-B", os.path.join(self._scripts, "program_server.py"), *script_args]
        size = str(tmp_mb << 20)
        inside = "/tmp/work"
        cmd = [self.bwrap, "--die-with-parent", "--new-session", "--clearenv", "--unshare-pid", "--unshare-net",
               "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if not self.drop_uid:
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
        prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(os.path.realpath(self.python)).parents[1]),
                    str(Path(self.python).parents[1])}
        for prefix in sorted(prefixes):
            if not any(prefix == m or prefix.startswith(m + "/") for m in bound):
                mount("--ro-bind", prefix, prefix)
        cmd += ["--proc", "/proc", "--dev", "/dev", "--size", size, "--perms", "1777", "--tmpfs", "/dev/shm",
                "--size", size, "--perms", "1777", "--tmpfs", inside,
                "--ro-bind", self._scripts, "/tmp/.ttscale", "--chdir", inside]
        for key, value in self._env(inside).items():
            cmd += ["--setenv", key, value]
        if self.drop_uid:  # root started bwrap (it can mount /root's Python); the program runs as the slot user
            cmd += ["--", self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                    "--bounding-set=-all"]
        else:
            cmd += ["--"]
        return cmd + [self.python, "-I", "-B", "/tmp/.ttscale/program_server.py", *script_args]

    @staticmethod
    def _env(home: str) -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
                "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def _spawn(self, slot, uid, workdir, program, program_limits, job, limits):
        request_r, request_w = os.pipe()  # tests -> program
        response_r, response_w = os.pipe()  # program -> tests
        report_r, report_w = os.pipe()  # tests -> us
        opened = [request_r, request_w, response_r, response_w, report_r, report_w]
        procs: list[subprocess.Popen] = []
        streams = _Streams(tail_bytes=4 * limits.output_tail)
        cgroup = self._cgroups.create(f"{slot}-{secrets.token_hex(3)}") if self._cgroups else []
        try:
            cmd = self._program_command(workdir, uid, request_r, response_w, program_limits, limits.tmp_mb)
            extra = {}
            if self.drop_uid and self.isolation == "none":  # with bwrap, setpriv switches inside the namespace
                if self.setpriv:  # after the cgroup move below, which needs root
                    cmd = [self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                           "--bounding-set=-all", *cmd]
                else:
                    extra = {"user": uid, "group": uid, "extra_groups": []}
            if cgroup and not extra:
                cmd = _Cgroups.enter_command(cgroup) + cmd
            program_proc = subprocess.Popen(
                cmd, cwd=workdir or "/", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=self._env(workdir or "/tmp"), start_new_session=True, pass_fds=(request_r, response_w), **extra)
            procs.append(program_proc)
            tests_proc = subprocess.Popen(
                [self.python, "-I", "-B", os.path.join(self._scripts, "test_runner.py"), str(request_w),
                 str(response_r), str(report_w)],
                cwd=self._scripts, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                env=self._env(self._scripts), start_new_session=True, pass_fds=(request_w, response_r, report_w))
            procs.append(tests_proc)
        except BaseException:
            for proc in procs:
                self._kill(proc, uid, cgroup)
            if self._cgroups:
                self._cgroups.release(cgroup)
            raise
        finally:
            for fd in (request_r, request_w, response_r, response_w, report_w):
                os.close(fd)
            opened = [report_r]
        for proc, data in ((program_proc, program.encode("utf-8", errors="replace")), (tests_proc, json.dumps(job).encode())):
            threading.Thread(target=self._feed, args=(proc.stdin, data), daemon=True).start()
        deadline = time.monotonic() + limits.timeout
        timed_out = False
        selector = selectors.DefaultSelector()
        try:
            for name, fd in (("program_out", program_proc.stdout.fileno()), ("program_err", program_proc.stderr.fileno()),
                             ("tests_out", tests_proc.stdout.fileno()), ("tests_err", tests_proc.stderr.fileno()),
                             ("report", report_r)):
                os.set_blocking(fd, False)
                selector.register(fd, selectors.EVENT_READ, name)
            while True:
                if tests_proc.poll() is not None and program_proc.poll() is not None:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                if selector.get_map():
                    self._drain(selector, streams, min(left, 0.02))
                else:  # every pipe is closed: only a process exit is left to wait for
                    for proc in procs:
                        if proc.poll() is None:
                            try:
                                proc.wait(timeout=min(left, 0.02))
                            except subprocess.TimeoutExpired:
                                pass
                            break
            self._drain(selector, streams, 0)
        finally:
            for proc in reversed(procs):  # the tests first: they must not report the program's death as theirs
                self._kill(proc, uid, cgroup)
            self._drain(selector, streams, 0)
            selector.close()
            for fd in opened:
                os.close(fd)
            for proc in procs:
                for stream in (proc.stdout, proc.stderr):
                    stream.close()
        oom = _Cgroups.oom_count(cgroup)
        if self._cgroups:
            self._cgroups.release(cgroup)
        return streams, timed_out, (program_proc.returncode, tests_proc.returncode), oom

    @staticmethod
    def _feed(stream, data: bytes) -> None:
        try:
            stream.write(data)
            stream.close()
        except (BrokenPipeError, OSError, ValueError):
            pass

    @staticmethod
    def _drain(selector, streams: _Streams, wait: float) -> None:
        for key, _ in selector.select(wait):
            try:
                data = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                streams.add(key.data, data)
            else:
                selector.unregister(key.fd)

    def _kill(self, proc: subprocess.Popen, uid: int, cgroup: list[str]) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group: children left behind too
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if cgroup:
            _Cgroups.kill(cgroup)
        if self.drop_uid and self.isolation == "none":  # a child in its own session is found by its uid
            # (with bwrap the PID namespace has already taken every process with it)
            for pid in _processes_of(uid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    @staticmethod
    def _events(report: bytes, nonce: str) -> list[dict]:
        prefix = nonce.encode() + b" "
        events = []
        for line in report.splitlines():
            if line.startswith(prefix):
                try:
                    events.append(json.loads(line[len(prefix):]))
                except json.JSONDecodeError:
                    continue
        return events

    @staticmethod
    def _probes(events: list[dict], n: int) -> list[str | None]:
        values: list[str | None] = [None] * n
        for event in events:
            if event.get("event") == "probe" and 0 <= event.get("index", -1) < n:
                values[event["index"]] = event["value"] if "value" in event else "!" + str(event.get("error"))
        return values

    @staticmethod
    def _verdict(events: list[dict], n_tests: int, timed_out: bool, codes: tuple, oom: int, limits: Limits) -> Verdict:
        program_code = codes[0]
        if program_code is not None and program_code > 128 and program_code - 128 in signal.Signals._value2member_map_:
            program_code = -(program_code - 128)  # bwrap reports a signal as 128 + n
        cpu_killed = program_code == -signal.SIGXCPU or codes[1] == -signal.SIGXCPU
        tests = [TestVerdict("timeout" if timed_out or cpu_killed else "error") for _ in range(n_tests)]
        by_kind = {e.get("event"): e for e in events}
        for event in events:
            if event.get("event") == "test" and 0 <= event.get("index", -1) < n_tests:
                tests[event["index"]] = TestVerdict(event["status"], event.get("error"))
        program = by_kind.get("program")
        if program is not None and program.get("status") == "error":
            return Verdict("error", tests, reason=f"the program raised {program.get('error')}")
        if program is not None and program.get("status") == "gone" and not (timed_out or cpu_killed or oom):
            return Verdict("error", tests, reason=f"the program's process ended before it loaded ({_code(program_code)}; "
                                                  f"{program.get('error')})")
        if "setup" in by_kind:
            return Verdict("error", tests, reason=f"the tests' setup raised {by_kind['setup'].get('error')}")
        gone = by_kind.get("gone") or (program if program is not None and program.get("status") == "gone" else None)
        if "done" in by_kind and gone is None:
            failed = [t for t in tests if t.status != "pass"]
            if failed:
                return Verdict("fail", tests)
            if program_code == 0:
                return Verdict("pass", tests)
            if timed_out:
                return Verdict("timeout", tests, reason="the program's process did not exit in time after the tests")
            return Verdict("error", tests, reason=f"the program's process did not exit cleanly ({_code(program_code)})")
        if timed_out:
            return Verdict("timeout", tests, reason="wall-clock timeout")
        if cpu_killed:
            return Verdict("timeout", tests, reason="CPU time limit")
        if oom:
            return Verdict("error", tests, reason=f"out of memory (the slot's cgroup limit, {limits.memory_mb} MB)")
        if gone is not None:
            return Verdict("error", tests, reason=f"the program's process ended during the tests ({_code(program_code)})")
        return Verdict("error", tests)


def _code(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"killed by {name}"
    return f"exit code {code}"
