"""One server against two, end to end: `ttscale-servers` starts them, the `ttscale` CLI runs through the
line it prints, and the run's own summary gives wall time and tokens.

    python evals/bench_servers.py [--model smollm2-135m] [--offset 400] [--problems 32] [--n 8]
                                  [--strategies self_consistency,particle_filtering]

Setups, on the same problems with the same configs, side by side in one run:
  1 server, 1 core   (ttscale-servers --servers 1, pinned to the first core: one replica)
  1 server, all cores (ttscale-servers --servers 1)
  N servers, 1 core each (ttscale-servers --servers N, N = the cores)
It prints run wall time (the CLI's, engine start excluded: the servers are up before the run),
generated tokens/s, and the ratios N servers / 1 server of one core and / 1 server of all cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def start_servers(model: str, servers: int, cores: list[int], folder: Path) -> tuple[subprocess.Popen, str]:
    endpoints = folder / "endpoints.txt"
    launcher = subprocess.Popen([sys.executable, "-m", "ttscale.servers", "--model", model, "--servers", str(servers),
                                 "--port", "0", "--endpoints-file", str(endpoints), "--logs", str(folder / "logs")],
                                stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=lambda: os.sched_setaffinity(0, cores))
    while not endpoints.exists():
        if launcher.poll() is not None:
            raise SystemExit(f"ttscale-servers exited {launcher.returncode}; logs in {folder / 'logs'}")
        time.sleep(1)
    return launcher, endpoints.read_text().strip()


def run_cli(line: str, strategy: str, args, out: Path) -> dict:
    extra = ["strategy.max_step_tokens=64", "strategy.max_steps=4", "verifier=mean_token_prob"] \
        if strategy == "particle_filtering" else []
    command = [sys.executable, "-m", "ttscale.cli", *shlex.split(line), f"strategy={strategy}", f"strategy.n={args.n}",
               f"strategy.max_tokens={args.max_tokens}", "dataset=gsm8k", f"dataset.source={args.data_path}",
               f"dataset.offset={args.offset}", f"dataset.limit={args.problems}", f"concurrency={args.problems}",
               "progress=false", f"hydra.run.dir={out}", *extra]
    proc = subprocess.run(command, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    summary = json.loads((out / "summary.json").read_text())
    return {"strategy": strategy, "wall_s": round(summary["wall_seconds"], 1),
            "tokens_per_s": round(summary["completion_tokens_per_second"], 1), "accuracy": summary["accuracy"],
            "errors": summary["errors"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--offset", type=int, default=400)
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=256)
    parser.add_argument("--data-path", default="../shared/data/gsm8k_test.jsonl")
    parser.add_argument("--strategies", default="self_consistency,particle_filtering")
    args = parser.parse_args()
    args.data_path = str(Path(args.data_path).resolve())

    cores = sorted(os.sched_getaffinity(0))
    setups = [("1 server, 1 core", 1, cores[:1]), (f"1 server, {len(cores)} cores", 1, cores),
              (f"{len(cores)} servers, 1 core each", len(cores), cores)]
    folder = Path(tempfile.mkdtemp(prefix="bench_servers_"))
    rows = []
    for i, (setup, servers, allowed) in enumerate(setups):
        started = time.perf_counter()
        launcher, line = start_servers(args.model, servers, allowed, folder / f"setup{i}")
        start_s = time.perf_counter() - started
        try:
            for strategy in args.strategies.split(","):
                row = {"setup": setup, "start_s": round(start_s, 1),
                       **run_cli(line, strategy, args, folder / f"setup{i}" / strategy)}
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            os.killpg(launcher.pid, signal.SIGTERM)
            launcher.wait(120)

    print(f"\n{args.model}, GSM8K test rows {args.offset}-{args.offset + args.problems - 1}, n={args.n}, "
          f"max_tokens={args.max_tokens}, {platform.machine()} x{len(cores)} ({time.strftime('%Y-%m-%d')})")
    print("| setup | strategy | servers up in s | run wall s | tokens/s | accuracy | errors |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['setup']} | {r['strategy']} | {r['start_s']} | {r['wall_s']} | {r['tokens_per_s']} | "
              f"{r['accuracy']:.3f} | {r['errors']} |")
    for strategy in args.strategies.split(","):
        tps = {r["setup"]: r["tokens_per_s"] for r in rows if r["strategy"] == strategy}
        one, whole, many = (tps.get(s[0]) for s in setups)
        print(f"{strategy}: {setups[2][0]} / {setups[0][0]} = {many / one:.2f}x; "
              f"/ {setups[1][0]} = {many / whole:.2f}x")


if __name__ == "__main__":
    main()
