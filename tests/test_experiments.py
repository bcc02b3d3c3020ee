"""Sweeps on real Hydra launchers, the wandb logger (offline) and the analysis command, on the
scripted stand-in model (backend=scripted), so no engine starts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def ttscale(*args, env=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "ttscale.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def summaries(sweep: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(sweep.glob("*/summary.json"))]


def test_sweep_then_one_analysis_command_gives_curves_and_a_leaderboard(tmp_path):
    sweep = tmp_path / "sweep"
    proc = ttscale("-m", "backend=scripted", "strategy=self_consistency,best_of_n", "strategy.n=1,2,4",
                   "dataset.limit=6", "progress=false", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = summaries(sweep)
    assert len(jobs) == 6 and {(j["strategy"], j["n"]) for j in jobs} == {
        (s, n) for s in ("self_consistency", "best_of_n") for n in (1, 2, 4)}
    for job in jobs:  # compute accounting: FLOPs from the model's size, prefix hits not counted
        assert job["flops_per_problem"] > 0 and "pass_at_k" in job and job["params"] == 1.35e8
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "ttscale.analysis", str(sweep), "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = (out / "leaderboard.md").read_text().splitlines()
    assert table[0].startswith("**Stand-in runs**")  # a scripted stand-in's numbers are never a model's
    header = next(i for i, line in enumerate(table) if line.startswith("| cell |"))
    assert table[header].startswith("| cell | n counts | model | dataset | seeds | graded | errors | accuracy | 95% CI |")
    assert len(table) == header + 2 + 6 and "/tmp" not in "\n".join(table)  # paths only in the CSV
    for name in ("leaderboard.csv", "compute_tokens.png", "compute_flops.png", "compute_wall.png"):
        assert (out / name).stat().st_size > 1000, name
    job = sweep / "backend=scripted,dataset.limit=6,strategy.n=4,strategy=self_consistency"  # named by its overrides
    assert (job / "curve.png").exists() and (job / "curve.csv").exists()  # n=4: a curve
    import csv

    with open(out / "leaderboard.csv") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:  # an interval is two numbers; a cell is named by what it overrode, not runs/0..5
        low, high = float(row["accuracy_ci95_low"]), float(row["accuracy_ci95_high"])
        assert 0 <= low <= float(row["accuracy"]) <= high <= 1
        assert row["cell"] == f"strategy={row['strategy']} strategy.n={row['n']}"
        assert row["model"] == "scripted:guess stand-in (not smollm2-135m)" and row["stand_in"] == "True"
        assert row["backend"] == "scripted:guess" and row["dataset"] == "gsm8k_fixture"
    from ttscale.analysis.__main__ import curve_title

    title = curve_title(job, [{"problems": 6}])
    assert title.startswith("self_consistency (n = 4, n counts samples) · scripted:guess stand-in (not smollm2-135m) · "
                            "gsm8k_fixture · 6 problems")
    assert str(tmp_path) not in title and "progress" not in title


def test_joblib_launcher_runs_jobs_in_parallel_processes(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "joblib"
    proc = ttscale("-m", "hydra/launcher=local_parallel", "backend=scripted", "strategy.n=1,2",
                   "dataset.limit=3", "progress=false", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel" in proc.stdout + proc.stderr
    assert sorted(j["n"] for j in summaries(sweep)) == [1, 2]


def test_ray_launcher_on_a_local_cluster(tmp_path):
    """hydra-ray-launcher (installed with the tests): ray.init starts a local cluster on this machine
    and each job runs as a Ray task, results collected by the sweep."""
    pytest.importorskip("hydra_plugins.hydra_ray_launcher")
    sweep = tmp_path / "ray"
    proc = ttscale("-m", "hydra/launcher=ray", "+hydra.launcher.ray.init.num_cpus=2",
                   "+hydra.launcher.ray.init.include_dashboard=false", "backend=scripted", "strategy.n=1,2",
                   "dataset.limit=3", "progress=false", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(j["n"] for j in summaries(sweep)) == [1, 2]


def test_submitit_local_sweep_runs_jobs_in_processes_records_a_failed_job_and_resumes(tmp_path):
    """hydra-submitit-launcher's local executor: each job in a process of its own (submitit's), results
    collected by the sweep; a job whose every problem errors is recorded as failed while the others
    finish (exit 1); a rerun into the same sweep folder resumes every job."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    sweep = tmp_path / "submitit"
    args = ["-m", "hydra/launcher=submitit_local", "backend=scripted", "backend.script=guess,fail", "strategy.n=1,2",
            "dataset.limit=3", "progress=false", f"hydra.sweep.dir={sweep}"]
    proc = ttscale(*args)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "ttscale: job failed: " in proc.stderr and "every problem of this run errored" in proc.stderr
    assert "Traceback" not in proc.stderr  # the failed job in one line (after Hydra's line naming its overrides)
    jobs = {(j["n"], j["errors"]) for j in summaries(sweep)}
    assert jobs == {(1, 0), (2, 0), (1, 3), (2, 3)}  # the failed jobs are recorded, the others finished
    logs = sorted((sweep / ".submitit").glob("*/*_log.out"))
    assert len({log.parent for log in logs}) == 4  # submitit ran four jobs, each a process with its own log
    for folder in sweep.glob("[0-9]*"):  # every job wrote its own results
        assert len((folder / "results.jsonl").read_text().splitlines()) == 3

    proc = ttscale(*args)  # resume: the finished problems are not solved again
    assert proc.returncode == 1, proc.stderr[-3000:]
    good = [j for j in summaries(sweep) if j["errors"] == 0]
    assert len(good) == 2 and all(j["resumed"] == 3 for j in good)


def test_submitit_slurm_differs_from_local_only_by_its_executor():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from ttscale.config import conf_dir, register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        local, slurm = (compose(config_name="config", overrides=[f"hydra/launcher={name}"], return_hydra_config=True)
                        .hydra.launcher for name in ("submitit_local", "submitit_slurm"))
    assert local._target_.endswith("LocalLauncher") and slurm._target_.endswith("SlurmLauncher")
    from omegaconf import OmegaConf

    # compared as written: resolving `${hydra.sweep.dir}` reads the clock (`${now:...}`), which may tick between the two
    local, slurm = (OmegaConf.to_container(c, resolve=False) for c in (local, slurm))
    shared = set(local) - {"_target_"}
    assert shared <= set(slurm) and all(local[k] == slurm[k] for k in shared)  # the queue settings: one meaning


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra import compose, initialize_config_dir

    from ttscale.config import conf_dir, register_schemas

    register_schemas()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        cfg = compose(config_name="config", overrides=["hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher") and launcher.gpus_per_node == 1 and launcher.partition == "gpu"


def wandb_records(path: Path):
    """The records of an offline run's .wandb file (a LevelDB-style log of protobuf Records; newer
    wandb writes config and summary only there): header ':W&B' + magic + version, 32 KiB blocks,
    each record chunk = crc32 (4) + length (2) + type (1: full, 2: first, 3: middle, 4: last)."""
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_wandb_offline_run_holds_config_metrics_table_and_plot(tmp_path):
    pytest.importorskip("wandb")
    run_dir = tmp_path / "run"
    proc = ttscale("backend=scripted", "logger=wandb", "logger.project=ttscale-test", "strategy.n=4",
                   "dataset.limit=4", "progress=false", f"hydra.run.dir={run_dir}",
                   env={"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "logged:" in proc.stdout
    (offline,) = list((run_dir / "wandb").glob("offline-run-*"))
    (log_file,) = list(offline.glob("*.wandb"))
    config, metrics = {}, {}
    for record in wandb_records(log_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            config.update({item.key: json.loads(item.value_json) for item in record.run.config.update})
        elif kind == "summary":
            metrics.update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                            for item in record.summary.update})
    summary = json.loads((run_dir / "summary.json").read_text())
    assert config["strategy"]["name"] == "self_consistency" and config["backend"]["kind"] == "scripted"
    assert config["dataset"]["limit"] == 4
    assert metrics["completion_tokens_per_problem"] == summary["completion_tokens_per_problem"]
    assert metrics["accuracy"] == summary["accuracy"] and metrics["pass_at_k/4"] == summary["pass_at_k"]["4"]
    assert metrics["problems/_type"] == "table-file" and metrics["problems/nrows"] == 4
    assert metrics["scaling_curve/_type"] == "image-file"
    (table,) = list((offline / "files" / "media" / "table").glob("problems_*.table.json"))
    rows = json.loads(table.read_text())["data"]
    assert sorted(r[0] for r in rows) == sorted(json.loads(line)["problem_id"]
                                                for line in (run_dir / "results.jsonl").read_text().splitlines())
    (image,) = list((offline / "files" / "media" / "images").glob("scaling_curve_*.png"))
    assert image.read_bytes()[:4] == b"\x89PNG"


def test_logger_errors_are_one_line():
    proc = ttscale("logger=nope")
    assert proc.returncode == 2 and proc.stderr.startswith("ttscale: logger=nope is not a known choice; choose one of: none, wandb")


def test_leaderboard_script_resumes(tmp_path):
    out = tmp_path / "lb"
    command = [sys.executable, str(Path(__file__).resolve().parents[1] / "evals" / "leaderboard.py"), "--out", str(out),
               "--strategies", "self_consistency,best_of_n", "--budgets", "1,2", "--", "backend=scripted",
               "dataset.limit=3"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = (out / "leaderboard.md").read_text().splitlines()
    assert rows[0] == "Not matched on compute: every strategy at strategy.n in 1,2 (n counts unlike things)."
    header = next(i for i, row in enumerate(rows) if row.startswith("| cell |"))
    assert len(rows) == header + 2 + 4 and (out / "compute_flops.png").exists()
    second = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert (out / "leaderboard.md").read_text().splitlines()[:3] == rows[:3]  # said once, not once per rerun
    assert all(s["resumed"] == 3 for s in summaries(out / "runs"))  # nothing regenerated
