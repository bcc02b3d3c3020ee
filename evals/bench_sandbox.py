"""Sandboxed executions per second for trivial programs, with and without the isolation layer.

    python evals/bench_sandbox.py [--programs 200] [--rounds 3] [--parallel 2] [--calls 5000] [--baseline DIR]

The same trivial program (a function and one passing test) runs through Sandbox("bwrap")
(namespaces + limits) and Sandbox("none") (limits only), in alternating rounds so every mode sees the
same machine load, plus a bare `python -I -c pass` spawn for the floor; and the cost of one proxied
call (a test calling the program `--calls` times, against a test calling it once). Each measurement runs in a
child process; with `--baseline DIR` (a checkout of an older ttscale, e.g. before the program/tests
process split) its sandbox is measured in the same rounds. Prints programs/s and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import concurrent.futures, json, sys, time
from ttscale.graders.code.sandbox import Limits, Sandbox
mode, count, parallel = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
try:
    sandbox = Sandbox(mode, Limits(timeout=10), parallel, allow_root=True)
except TypeError:  # versions before allow_root
    sandbox = Sandbox(mode, Limits(timeout=10), parallel)
program, tests = "def add(a, b):\\n    return a + b\\n", ["assert add(2, 3) == 5"]
sandbox.run(program, tests)
t0 = time.perf_counter()
with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
    ok = all(pool.map(lambda _: sandbox.run(program, tests).passed, range(count)))
rate = count / (time.perf_counter() - t0)
calls = int(sys.argv[4])
def timed(n):
    loop = f"for i in range({n}):\\n    assert add(i, 1) == i + 1"
    best = float("inf")
    for _ in range(3):
        verdict = sandbox.run(program, [loop])
        assert verdict.passed, verdict
        best = min(best, verdict.seconds)
    return best
per_call = (timed(calls) - timed(1)) / (calls - 1)
print(json.dumps({"rate": rate, "ok": ok, "per_call_us": per_call * 1e6}))
"""


def sandbox_rate(pythonpath: str, mode: str, count: int, parallel: int, calls: int, per_call: list) -> float:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(count), str(parallel), str(calls)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": pythonpath}, check=True,
                          cwd=tempfile.gettempdir())  # not the checkout: PYTHONPATH picks the version
    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["ok"], "a trivial program did not pass"
    per_call.append(outcome["per_call_us"])
    return outcome["rate"]


def spawn_rate(count: int, parallel: int) -> float:
    import concurrent.futures

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda _: subprocess.run([sys.executable, "-I", "-c", "pass"]), range(count)))
    return count / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=200, help="programs per mode per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--calls", type=int, default=5000, help="proxied calls in the per-call measurement")
    parser.add_argument("--baseline", help="a checkout of another ttscale version to compare with")
    args = parser.parse_args()
    from ttscale.graders.code.sandbox import bwrap_problem

    problem = bwrap_problem()
    if problem:
        raise SystemExit(f"bench_sandbox: {problem}")
    versions = {"current": str(Path(__file__).resolve().parents[1])}
    if args.baseline:
        versions["baseline"] = str(Path(args.baseline).resolve())
    per_call: dict[str, list[float]] = {f"{v} {m}": [] for v in versions for m in ("bwrap", "none")}
    runners = {f"{version} {mode}": (lambda p=path, m=mode, k=f"{version} {mode}":
                                     sandbox_rate(p, m, args.programs, args.parallel, args.calls, per_call[k]))
               for version, path in versions.items() for mode in ("bwrap", "none")}
    runners["bare python spawn"] = lambda: spawn_rate(args.programs, args.parallel)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            rates[name].append(run())
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; parallel={args.parallel}; "
          f"{args.programs} programs x {args.rounds} rounds per mode; root={os.geteuid() == 0}")
    means = {name: sum(r) / len(r) for name, r in rates.items()}
    for name, values in rates.items():
        per = 1000 / means[name] * args.parallel
        print(f"{name:>18}: {means[name]:7.1f} programs/s, {per:5.0f} ms per program  "
              f"(rounds: {', '.join(f'{v:.1f}' for v in values)})")
    for name, values in per_call.items():
        print(f"{name:>18}: {min(values):6.1f} us per proxied call (best of rounds: {', '.join(f'{v:.1f}' for v in values)})")
    for version in versions:
        print(f"{version}: ratio bwrap / none {means[f'{version} bwrap'] / means[f'{version} none']:.3f}")
    if args.baseline:
        for mode in ("bwrap", "none"):
            print(f"{mode}: ratio current / baseline {means[f'current {mode}'] / means[f'baseline {mode}']:.3f}")


if __name__ == "__main__":
    main()
