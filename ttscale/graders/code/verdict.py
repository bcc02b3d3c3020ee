"""Verdicts: what the tests' process reported, read together with how both processes ended.

A pass needs the report's "done" after every test passed, and the program's process exiting with
code 0 in time. Report lines carry a per-run nonce; lines without it are not events.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass, field


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
    # each probe's value as a hash of its full canonical form ("!Error" if it raised; None: no value)
    probes: list[str | None] = field(default_factory=list)
    probe_values: list[str | None] = field(default_factory=list)  # each one's repr, cut to 1000 characters
    stdout: str = ""
    stderr: str = ""
    returncode: int | None = None
    seconds: float = 0.0
    isolation: str = "none"

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def read_events(report: bytes, nonce: str) -> list[dict]:
    prefix = nonce.encode() + b" "
    events = []
    for line in report.splitlines():
        if line.startswith(prefix):
            try:
                events.append(json.loads(line[len(prefix):]))
            except json.JSONDecodeError:
                continue
    return events

def read_probes(events: list[dict], n: int, field: str = "key") -> list[str | None]:
    """Each probe's `key` (a hash of its value, for votes) or `value` (its repr, for reading);
    "!Error" where it raised, None where it gave nothing."""
    values: list[str | None] = [None] * n
    for event in events:
        if event.get("event") == "probe" and 0 <= event.get("index", -1) < n:
            values[event["index"]] = str(event[field]) if field in event else "!" + str(event.get("error"))
    return values


def decide(events: list[dict], n_tests: int, timed_out: bool, codes: tuple, oom: int, memory_mb: int,
           cpu_over: bool = False) -> Verdict:
    """The verdict from the tests' report, the processes' exit codes, the clock, the cgroup and the CPU
    watch (`cpu_over`: a process tree passed its CPU seconds and was stopped)."""
    program_code = codes[0]
    if program_code is not None and program_code > 128 and program_code - 128 in signal.Signals._value2member_map_:
        program_code = -(program_code - 128)  # bwrap reports a signal as 128 + n
    cpu_killed = cpu_over or program_code == -signal.SIGXCPU or codes[1] == -signal.SIGXCPU
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
        if cpu_over:
            return Verdict("timeout", tests, reason="CPU time limit (the program's process, after the tests)")
        if timed_out:
            return Verdict("timeout", tests, reason="the program's process did not exit in time after the tests")
        return Verdict("error", tests, reason=f"the program's process did not exit cleanly ({_code(program_code)})")
    if timed_out:
        return Verdict("timeout", tests, reason="wall-clock timeout")
    if cpu_killed:
        return Verdict("timeout", tests, reason="CPU time limit")
    if oom:
        return Verdict("error", tests, reason=f"out of memory (the run's cgroup limit, {memory_mb} MB)")
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
