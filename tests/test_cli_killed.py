"""A killed run takes its engine with it (#30): every process ttscale starts ends when ttscale dies by
any signal, SIGKILL included; SIGTERM stops a run as Ctrl-C does; a rerun resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from processes import marked_by, tree, wait_gone

REPO = Path(__file__).resolve().parents[1]


GUARDED = textwrap.dedent("""
    import subprocess, sys, time
    from ttscale.reaper import guard, install_signal_handlers
    guard()
    install_signal_handlers()
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    subprocess.Popen(sleeper)                           # a child
    subprocess.Popen(sleeper, start_new_session=True)   # one in a session of its own
    subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time; "
                      "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); time.sleep(600)"])
    import os
    if os.fork() == 0:  # forked without exec, as vLLM's engine core: its /proc environ lacks the mark
        if os.fork() == 0:  # and its own child
            time.sleep(600)
            os._exit(0)
        time.sleep(600)
        os._exit(0)
    print("ready", flush=True)
    try:
        time.sleep(600)
    except KeyboardInterrupt as exc:
        print("stopped:", exc, flush=True)
        sys.exit(130)
""")


def start_guarded():
    proc = subprocess.Popen([sys.executable, "-c", GUARDED], stdout=subprocess.PIPE, text=True, cwd=REPO)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + 10
    while len(marked_by(proc.pid)) < 5 and time.monotonic() < deadline:  # 4 sleepers and the middle one
        time.sleep(0.1)
    time.sleep(1.5)  # the watchdog has looked at the tree since the forks
    # the process tree (the watchdog itself, in a session of its own, ends by itself once done)
    return proc, sorted(set(tree(proc.pid)) | set(marked_by(proc.pid)))


def test_every_descendant_dies_with_a_sigkilled_process():
    proc, descendants = start_guarded()
    unmarked = [pid for pid in descendants if pid not in marked_by(proc.pid)]
    assert len(descendants) >= 7 and len(unmarked) >= 3, descendants  # the forked two and the watchdog
    proc.kill()
    proc.wait()
    assert wait_gone(descendants, 15) == []


def test_sigterm_stops_like_ctrl_c_and_still_reaps():
    proc, descendants = start_guarded()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "stopped: signal SIGTERM" in out
    assert wait_gone(descendants, 15) == []


def ttscale_popen(*args):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("TTSCALE_RUN", None)
    return subprocess.Popen([sys.executable, "-m", "ttscale.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def wait_for_results(sweep: Path, at_least: int, proc, seconds: float = 400) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if sum(len(lines(p)) for p in sweep.glob("*/results.jsonl")) >= at_least:
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended first: {proc.stderr.read()[-2000:]}")
        time.sleep(0.5)
    raise AssertionError("no results in time")


def engine_tree(pid: int) -> list[int]:
    """The run's processes by the process tree, which must hold vLLM's engine core (forked without
    exec, so no mark in its /proc environ would show it)."""
    found = tree(pid)
    names = []
    for child in found:
        try:
            names.append(Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    assert any("EngineCore" in name for name in names), names
    return found


@pytest.mark.integration
def test_a_killed_sweep_takes_its_engine_with_it_and_the_rerun_resumes(tmp_path):
    """The CPU engine: SIGTERM mid-sweep stops it cleanly, SIGKILL of the rerun leaves no process of
    its tree, and a third run finishes every problem once with no errors."""
    sweep = tmp_path / "sweep"
    args = ["-m", "strategy.n=1,2", "dataset.limit=8", "strategy.max_tokens=48", "progress=false",
            "backend.env.VLLM_CPU_KVCACHE_SPACE=1", f"hydra.sweep.dir={sweep}"]
    # 1. SIGTERM (SLURM's and submitit's first signal): a clean stop, what was done is kept
    proc = ttscale_popen(*args)
    wait_for_results(sweep, 2, proc)
    engine = engine_tree(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    # one line, no traceback: what is kept and how to resume
    last = err.strip().splitlines()[-1]
    assert last.startswith("ttscale: stopped (signal SIGTERM); ") and f"hydra.sweep.dir={sweep} resumes" in last, err
    assert "Traceback" not in err
    assert wait_gone(engine, 20) == []
    done = sum(len(lines(p)) for p in sweep.glob("*/results.jsonl"))
    assert done >= 2
    # 2. SIGKILL (preemption after the grace period, the OOM killer): nothing of its tree survives
    proc = ttscale_popen(*args)
    wait_for_results(sweep, done + 1, proc)
    engine = engine_tree(proc.pid)
    proc.kill()
    proc.wait()
    assert wait_gone(engine, 20) == []
    # 3. the rerun into the same folder finishes: every problem once, no errors (-v: the engine's own log
    # on the console, not in engine.log)
    proc = ttscale_popen("-v", *args)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    # the sweep's jobs share one engine (none when the killed run had finished every problem before the kill)
    started = err.count("ttscale: starting the vllm engine")
    assert started <= 1 and (started or "nothing to generate, no vllm backend started" in err), err[-3000:]
    if started:
        assert "engine.log" not in err and "WARNING" in out + err
    results = sorted(sweep.glob("*/results.jsonl"))
    assert len(results) == 2
    for path in results:
        rows = lines(path)
        assert len(rows) == 8 and len({r["problem_id"] for r in rows}) == 8, path
        assert not any(r.get("error") for r in rows)
    assert wait_gone(marked_by(proc.pid), 20) == []
