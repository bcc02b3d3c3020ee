"""Run untrusted programs: a separate process per program, resource limits, and real isolation
(Linux namespaces through bubblewrap) where the machine has it.

Layers, outermost first:
- bubblewrap (`isolation="bwrap"`): new user, PID, network, IPC, UTS and mount namespaces; only the
  system's and Python's folders are mounted, read-only; a private /tmp; the run's working directory is
  the one writable place; no network (a fresh loopback); the environment is cleared; everything the
  program started dies with the namespace.
- a throw-away user id per parallel slot when ttscale runs as root, so the program owns no file
  outside its working directory and the process limit counts only its own processes.
- limits set by the harness before the program runs: address space, CPU seconds, file size (stdout
  and stderr are files too, so output is capped), processes, open files, no core dumps.
- a wall-clock timeout, then SIGKILL to the whole process group (and, without bubblewrap, to every
  process of the slot's user id).
- a fresh temporary working directory, removed afterwards, and a scrubbed environment.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

ISOLATIONS = ("auto", "bwrap", "none")
HARNESS = Path(__file__).with_name("harness.py")
SLOT_UID_BASE = 61000  # root only: slot i runs as uid/gid SLOT_UID_BASE + i


@dataclass(frozen=True)
class Limits:
    """Per program. timeout: wall-clock seconds for the program and all its tests."""

    timeout: float = 10.0
    cpu_seconds: int = 10
    memory_mb: int = 1024
    file_size_mb: int = 16
    processes: int = 32  # beyond those its user id already runs
    open_files: int = 64
    output_tail: int = 2000  # characters of stdout / stderr kept in the verdict


@dataclass
class TestVerdict:
    status: str  # pass | fail | error | timeout
    error: str | None = None


@dataclass
class Verdict:
    """pass: the harness reported that every test ran and passed. fail: it reported a failed test.
    timeout: killed by the wall clock or CPU limit. error: the program did not load, or the process
    ended without the harness's report (a crash, a limit, or an early exit)."""

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


def _tail(path: Path, chars: int) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 4 * chars))
            text = handle.read().decode(errors="replace")
    except OSError:
        return ""
    return text[-chars:]


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


def _remove_tree(path: str) -> None:
    def unlock(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            os.chmod(target, 0o700)
            func(target)
        except OSError:
            pass

    shutil.rmtree(path, onerror=unlock)


class Sandbox:
    """Runs programs with their tests. Thread-safe; at most `parallel` programs at once.

    isolation: "bwrap" (refuse to run without it), "none" (limits only), or "auto" (bwrap when it
    works here, else limits only, with a warning). `python` is the interpreter inside the sandbox.
    """

    def __init__(self, isolation: str = "auto", limits: Limits | None = None, parallel: int | None = None,
                 python: str | None = None, bwrap: str | None = None):
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
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.parallel):
            self._slots.put(slot)

    # -- one run ---------------------------------------------------------------------------------
    def run(self, program: str, tests: Sequence[str] = (), setup: str = "", limits: Limits | None = None,
            probes: Sequence[str] = ()) -> Verdict:
        """Run `program`, then `setup`, then evaluate each probe expression, then each test snippet,
        all in one namespace."""
        limits = limits or self.limits
        slot = self._slots.get()
        try:
            return self._run(slot, program, list(tests), setup, limits, list(probes))
        finally:
            self._slots.put(slot)

    def _run(self, slot: int, program: str, tests: list[str], setup: str, limits: Limits, probes: list[str]) -> Verdict:
        uid = SLOT_UID_BASE + slot if self.drop_uid else os.getuid()
        gid = SLOT_UID_BASE + slot if self.drop_uid else os.getgid()
        private = tempfile.mkdtemp(prefix="ttscale-sbx-io-")  # ours: the program never sees this folder
        workdir = tempfile.mkdtemp(prefix="ttscale-sbx-")
        started = time.perf_counter()
        try:
            if self.drop_uid:
                os.chown(workdir, uid, gid)
            os.chmod(workdir, 0o700)
            out_path, err_path, rep_path = (Path(private) / name for name in ("stdout", "stderr", "report"))
            nonce = secrets.token_hex(16)  # the harness's report lines carry it; the program never sees it
            # the process limit counts every process of the user id (outside a user namespace)
            processes = limits.processes + (0 if self.drop_uid or self.isolation == "bwrap" else len(_processes_of(uid)))
            job = {"nonce": nonce, "program": program, "setup": setup, "tests": tests, "probes": probes,
                   "limits": {"memory_bytes": limits.memory_mb << 20, "cpu_seconds": limits.cpu_seconds,
                              "file_size_bytes": limits.file_size_mb << 20, "processes": processes,
                              "open_files": limits.open_files}}
            with open(out_path, "wb") as out, open(err_path, "wb") as err, open(rep_path, "wb") as rep:
                timed_out, returncode = self._spawn(job, workdir, uid, gid, out, err, rep, limits)
            events = self._events(rep_path.read_bytes(), nonce)
            verdict = self._verdict(events, len(tests), timed_out, returncode)
            verdict.probes = self._probes(events, len(probes))
            verdict.stdout = _tail(out_path, limits.output_tail)
            verdict.stderr = _tail(err_path, limits.output_tail)
            if verdict.status == "error" and verdict.reason is None:
                verdict.reason = self._why(returncode, verdict.stderr, limits)
        finally:
            _remove_tree(workdir)
            _remove_tree(private)
        verdict.returncode = returncode
        verdict.seconds = time.perf_counter() - started
        verdict.isolation = self.isolation
        return verdict

    def _command(self, workdir: str, uid: int) -> list[str]:
        harness_args = ["-I", "-B"]
        if self.isolation == "none":
            return [self.python, *harness_args, str(HARNESS)]
        inside = "/tmp/work"
        cmd = [self.bwrap, "--die-with-parent", "--new-session", "--clearenv", "--unshare-pid", "--unshare-net",
               "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
        if not self.drop_uid:
            cmd += ["--unshare-user", "--cap-drop", "ALL"]
        # the private /tmp first: a Python (or venv) under /tmp is mounted on top of it, not hidden by it
        cmd += ["--perms", "1777", "--tmpfs", "/tmp"]
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
        cmd += ["--proc", "/proc", "--dev", "/dev", "--bind", workdir, inside,
                "--ro-bind", str(HARNESS), "/tmp/.harness.py", "--chdir", inside]
        for key, value in self._env(inside).items():
            cmd += ["--setenv", key, value]
        if self.drop_uid:  # root started bwrap (it can mount /root's Python); the program runs as the slot user
            cmd += ["--", self.setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--inh-caps=-all",
                    "--bounding-set=-all"]
        else:
            cmd += ["--"]
        return cmd + [self.python, *harness_args, "/tmp/.harness.py"]

    @staticmethod
    def _env(home: str) -> dict[str, str]:
        return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
                "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def _spawn(self, job, workdir, uid, gid, out, err, rep, limits) -> tuple[bool, int | None]:
        cmd = self._command(workdir, uid)
        job = {**job, "report_fd": rep.fileno()}  # pass_fds keeps the number; bwrap passes it on
        switch = self.drop_uid and self.isolation == "none"  # with bwrap, setpriv switches inside
        extra = {"user": uid, "group": gid, "extra_groups": []} if switch else {}
        proc = subprocess.Popen(cmd, cwd=workdir, stdin=subprocess.PIPE, stdout=out, stderr=err, env=self._env(workdir),
                                start_new_session=True, pass_fds=(rep.fileno(),), **extra)
        timed_out = False
        try:
            proc.communicate(json.dumps(job).encode(), timeout=limits.timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        except BrokenPipeError:  # it died before reading the job
            pass
        finally:
            self._kill(proc, uid)
        return timed_out, proc.returncode

    def _kill(self, proc: subprocess.Popen, uid: int) -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group: children left behind too
        except ProcessLookupError:
            pass
        proc.wait()
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
    def _verdict(events: list[dict], n_tests: int, timed_out: bool, returncode: int | None) -> Verdict:
        cpu_killed = returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU)  # bwrap reports a signal as 128 + n
        tests = [TestVerdict("timeout" if timed_out or cpu_killed else "error") for _ in range(n_tests)]
        program = next((e for e in events if e.get("event") == "program"), None)
        done = any(e.get("event") == "done" for e in events)
        for event in events:
            if event.get("event") == "test" and 0 <= event.get("index", -1) < n_tests:
                tests[event["index"]] = TestVerdict(event["status"], event.get("error"))
        if program is not None and program.get("status") == "error":
            return Verdict("error", tests, reason=f"the program raised {program.get('error')}")
        if done:
            failed = [t for t in tests if t.status != "pass"]
            return Verdict("fail" if failed else "pass", tests)
        if timed_out:
            return Verdict("timeout", tests, reason="wall-clock timeout")
        if cpu_killed:
            return Verdict("timeout", tests, reason="CPU time limit")
        return Verdict("error", tests)

    @staticmethod
    def _why(returncode: int | None, stderr: str, limits: Limits) -> str:
        if returncode is not None and returncode > 128 and returncode - 128 in signal.Signals._value2member_map_:
            returncode = -(returncode - 128)  # bwrap reports a signal as 128 + n
        if returncode is not None and returncode < 0:
            name = signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else str(-returncode)
            if -returncode == signal.SIGXFSZ:
                return f"killed by SIGXFSZ: output or a file exceeded {limits.file_size_mb} MB"
            return f"killed by {name}"
        if "MemoryError" in stderr:
            return f"out of memory ({limits.memory_mb} MB)"
        return f"the harness did not report completion (exit code {returncode}): the program ended the process early"
