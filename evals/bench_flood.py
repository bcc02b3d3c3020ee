"""What a program that floods stdout costs the grader's own process (outside every cgroup).

    python evals/bench_flood.py [--baseline DIR] [--timeout 6]

A program writes 64 KiB blocks to stdout forever; its run has a `--timeout` second limit. Each version
(this checkout, and with `--baseline DIR` an older ttscale) runs it in a child process, which reports
the run's wall time, its verdict, and the CPU seconds the grader's process spent (resource.getrusage:
draining the pipes happens there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time
from ttscale.graders.code.sandbox import Limits, Sandbox
sandbox = Sandbox("auto", Limits(timeout=float(sys.argv[1]), cpu_seconds=30, memory_mb=512), parallel=1, allow_root=True)
sandbox.run("def f():\n    return 1\n", ["assert f() == 1"])  # started once outside the measurement
before, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
verdict = sandbox.run("import sys\ndef f():\n    while True:\n        sys.stdout.write('x' * 65536)\n", ["f()"])
after = resource.getrusage(resource.RUSAGE_SELF)
cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": cpu, "status": verdict.status}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", help="a checkout of an older ttscale, measured the same way")
    parser.add_argument("--timeout", type=float, default=6.0)
    args = parser.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs; a {args.timeout:g} s limit")
    for name, path in [("current", here)] + ([("baseline", os.path.abspath(args.baseline))] if args.baseline else []):
        proc = subprocess.run([sys.executable, "-c", CHILD, str(args.timeout)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": path}, cwd=tempfile.gettempdir(), check=True)
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"  {name:8s}: grader CPU {result['cpu']:.2f} s, wall {result['wall']:.2f} s, verdict {result['status']}")


if __name__ == "__main__":
    main()
