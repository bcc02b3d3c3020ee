"""Sandboxed executions per second for trivial programs, with and without the isolation layer.

    python evals/bench_sandbox.py [--programs 200] [--parallel 2]

The same trivial program (a function and one passing test) runs through Sandbox("bwrap")
(namespaces + limits) and Sandbox("none") (limits only), in alternating rounds so both see the same
machine load, plus a bare `python -I -c pass` spawn for the floor. Prints programs/s for each and
the ratio bwrap / none.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import platform
import subprocess
import sys
import time

from ttscale.graders.code.sandbox import Limits, Sandbox, bwrap_problem

PROGRAM = "def add(a, b):\n    return a + b\n"
TESTS = ["assert add(2, 3) == 5"]


def rate(run_one, count: int, parallel: int) -> float:
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
        outcomes = list(pool.map(lambda _: run_one(), range(count)))
    elapsed = time.perf_counter() - started
    assert all(outcomes), "a trivial program did not pass"
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=200, help="programs per mode per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=2)
    args = parser.parse_args()
    problem = bwrap_problem()
    if problem:
        raise SystemExit(f"bench_sandbox: {problem}")
    limits = Limits(timeout=10)
    modes = {
        "bwrap": Sandbox("bwrap", limits, args.parallel),
        "none": Sandbox("none", limits, args.parallel),
    }
    runners = {name: (lambda sb=sb: sb.run(PROGRAM, TESTS).passed) for name, sb in modes.items()}
    runners["bare python spawn"] = lambda: subprocess.run([sys.executable, "-I", "-c", "pass"]).returncode == 0
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run_one in runners.items():
            rates[name].append(rate(run_one, args.programs, args.parallel))
    print(f"machine: {platform.machine()}, {__import__('os').cpu_count()} CPUs; parallel={args.parallel}; "
          f"{args.programs} programs x {args.rounds} rounds per mode")
    means = {name: sum(r) / len(r) for name, r in rates.items()}
    for name, values in rates.items():
        print(f"{name:>18}: {means[name]:7.1f} programs/s  (rounds: {', '.join(f'{v:.1f}' for v in values)})")
    print(f"ratio bwrap / none: {means['bwrap'] / means['none']:.3f}; "
          f"per program: bwrap {1000 / means['bwrap'] * args.parallel:.0f} ms, none {1000 / means['none'] * args.parallel:.0f} ms")
    print(f"isolation as root: slot uids via setpriv = {modes['bwrap'].drop_uid}")


if __name__ == "__main__":
    main()
