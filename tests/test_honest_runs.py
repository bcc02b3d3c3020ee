"""A run that cannot be right refuses before its first problem, in one line; a run that is no result
never exits 0 (#27, first part)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ttscale.cli import check_overrides

NEEDS_TOKEN_STATISTICS = ["deepconf", "deepconf_online", "eager", "inverse_entropy", "power_sampling", "sequential",
                          "self_certainty", "tail_entropy",
                          "weighted_vote"]


def ttscale(*args, timeout=300):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "ttscale.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("strategy", NEEDS_TOKEN_STATISTICS)
def test_methods_that_read_token_statistics_refuse_a_backend_without_them(strategy):
    problem = check_overrides(["backend=scripted", f"strategy={strategy}"])
    assert problem is not None and problem.startswith(f"strategy={strategy}: ") and "returns none" in problem
    assert "backend.synthetic_logprobs" in problem and "\n" not in problem
    assert check_overrides(["backend=scripted", "backend.synthetic_logprobs=20", f"strategy={strategy}"]) is None
    assert check_overrides([f"strategy={strategy}"]) is None  # the vLLM engine returns them


def test_rpc_and_majority_need_no_top_k():
    assert check_overrides(["backend=scripted", "strategy=rpc"]) is None
    assert check_overrides(["backend=scripted", "strategy=self_consistency"]) is None


@pytest.mark.parametrize("strategy", NEEDS_TOKEN_STATISTICS)
def test_every_token_level_method_runs_end_to_end_on_synthetic_logprobs(strategy, tmp_path):
    proc = ttscale("backend=scripted", "backend.synthetic_logprobs=20", f"strategy={strategy}", "dataset.limit=3",
                   "progress=false", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and not any(r.get("error") for r in rows), rows[0].get("error")
    assert all(r["answer"] is not None for r in rows)


def test_refused_in_one_line_before_anything_starts(tmp_path):
    proc = ttscale("backend=scripted", "strategy=eager", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert proc.stderr.startswith("ttscale: strategy=eager: strategy.search='eager' reads top-k logprobs")
    assert not (tmp_path / "results.jsonl").exists()


def test_a_run_whose_every_problem_errored_exits_non_zero(tmp_path):
    proc = ttscale("backend=scripted", "backend.script=fail", "dataset.limit=3", "progress=false",
                   f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "ttscale: every problem of this run errored (3 of 3; the first: " in proc.stderr
    rows = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["error"] for r in rows)  # recorded all the same
    assert json.loads((tmp_path / "summary.json").read_text())["errors"] == 3


@pytest.mark.parametrize("args, message", [
    (["concurrency=0"], "ttscale: concurrency=0: the problems in flight at once, an integer >= 1"),
    (["dataset.offset=100000"], "ttscale: dataset 'fixture:gsm8k_test_30' selects no problem (offset=100000, "
                                "limit=None): the offset is past the end"),
    (["dataset=gsm8k", "dataset.source=/no/such/file.jsonl"], "ttscale: dataset file '/no/such/file.jsonl' does not exist"),
    (["hydra/launcher=rq"], "ttscale: hydra/launcher=rq is not a known choice; choose one of: basic, joblib, "
                            "local_parallel, ray, ray_aws, slurm_gpu, submitit_local, submitit_slurm (a launcher's "
                            "plugin adds its choice once installed, e.g. pip install hydra-rq-launcher; docs/EXPERIMENTS.md)"),
])
def test_bad_runs_stop_in_one_line(args, message, tmp_path):
    proc = ttscale("backend=scripted", "progress=false", *args, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and proc.stderr.strip() == message, proc.stderr[-2000:]


def test_a_malformed_dataset_names_its_row_and_the_fix_and_an_unwritable_folder_is_refused(tmp_path):

    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"question": "a", "answer": "#### 3"}\n{"question": "b", "answer": "4"}\n')
    proc = ttscale("backend=scripted", "progress=false", f"dataset.source={rows}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"ttscale: {rows}:2: field 'answer': no '#### N' marker (a GSM8K answer ends with one; for answers given "
        "as they are, set dataset.answer_format=raw)")
    assert check_overrides([f"hydra.run.dir={rows}/run"], multirun=False) == (
        f"hydra.run.dir={rows}/run: cannot write there ({rows}: not a folder); choose another output folder")
    assert check_overrides([f"hydra.sweep.dir={tmp_path}/sweep"], multirun=True) is None


@pytest.mark.parametrize("override", ["strategy.eta=90", "+strategy.foo=1"])
def test_keys_the_strategy_does_not_read_are_refused(override):
    problem = check_overrides([override])
    assert problem.startswith(f"strategy.{override.split('.')[1].split('=')[0]} is not read by strategy=self_consistency")
    assert check_overrides(["strategy=deepconf", "strategy.eta=90"]) is None
    assert check_overrides(["strategy=particle_filtering", "strategy.max_steps=8"]) is None


def test_a_sweep_is_checked_whole_before_its_first_job():
    # the case: the third job (deepconf, eta=200) used to fail after two had run
    problem = check_overrides(["strategy=self_consistency,deepconf", "strategy.eta=10,200"])
    assert problem == "strategy.eta=200.0 must be in (0, 100]"
    # a key one strategy of the sweep reads is fine (a recipe comparing methods); one none reads is not
    assert check_overrides(["strategy=self_consistency,deepconf", "strategy.eta=10,90"]) is None
    problem = check_overrides(["strategy=self_consistency,best_of_n", "strategy.eta=10"])
    assert problem == "strategy.eta is not read by any strategy of this sweep (self_consistency, best_of_n): it would be ignored"
    assert check_overrides(["strategy.n=1,2,4", "strategy.temperature=0.5,0.7"]) is None


def test_a_backend_check_is_one_line_too(tmp_path):
    proc = ttscale("backend=scripted", "strategy=particle_filtering", "dataset.limit=1", "progress=false",
                   f"hydra.run.dir={tmp_path}")
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 2 and last.startswith("ttscale: verifier=self_eval reads top-k logprobs"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_proportions_have_honest_intervals_at_zero_and_one():
    from ttscale.analysis import proportion_ci, wilson_ci

    low, high = wilson_ci(0, 30)
    assert low == 0.0 and 0.11 < high < 0.12  # not [0, 0]
    low, high = wilson_ci(30, 30)
    assert high == 1.0 and 0.88 < low < 0.89
    assert proportion_ci([1, 0, 1, 1]) == wilson_ci(3, 4)
    assert proportion_ci([]) is None and wilson_ci(0, 0) is None


def test_an_all_errored_run_has_no_accuracy_on_the_leaderboard(tmp_path):
    from ttscale.analysis.plots import plot_compute
    from ttscale.analysis.report import leaderboard

    proc = ttscale("backend=scripted", "backend.script=fail", "dataset.limit=2", "progress=false",
                   f"hydra.run.dir={tmp_path / 'bad'}")
    assert proc.returncode == 1
    proc = ttscale("backend=scripted", "dataset.limit=2", "progress=false", f"hydra.run.dir={tmp_path / 'good'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["run"].rsplit("/", 1)[-1]: r for r in leaderboard([str(tmp_path / "bad"), str(tmp_path / "good")])}
    assert rows["bad"]["errors"] == 2 and rows["bad"]["accuracy"] is None and rows["bad"]["accuracy_ci95"] is None
    assert rows["good"]["errors"] == 0 and rows["good"]["accuracy"] is not None
    plot = plot_compute(list(rows.values()), "tokens", tmp_path / "plot.png")
    assert plot is not None  # the good run is plotted, the all-errored one is left out


def test_every_summary_says_what_it_came_from(tmp_path):
    proc = ttscale("backend=scripted", "dataset.limit=2", "progress=false", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    prov = summary["provenance"]
    assert prov["ttscale"] and prov["date"] and prov["machine"]["cpus"]
    # a stand-in answered: no engine, no weights named (a real engine's run: test_integration_vllm)
    assert prov["stand_in"] is True and prov["engine"] is None and prov["backend"] == "scripted:guess"
    assert prov["model"]["name"] == "smollm2-135m" and "sha256" not in prov["model"]
    assert prov["dataset"]["problems"] == 2 and len(prov["dataset"]["sha256"]) == 64
    if (tmp_path.parent / ".git").exists() or prov["git"]:
        assert len(prov["git"]["commit"]) == 40
    row = json.loads((tmp_path / "results.jsonl").read_text().splitlines()[0])
    assert len(row["info"]["question_sha256"]) == 64 and row["info"]["prompt"]
    assert "provenance" not in proc.stdout  # in the file, not on the terminal


def test_the_demo_stand_in_lets_scaling_curves_rise(tmp_path):
    """backend=demo: majority voting rises with n, and a verifier that reads confidence (best-of-n by
    mean logprob, DeepConf) rises faster; curves from one n=16 run rise from k=1 to k=16."""
    import ttscale as tts
    from ttscale.results.curves import scaling_curve
    from ttscale.backends.demo import DemoBackend

    problems = tts.load_problems(tts.DatasetSpec(source="fixture:gsm8k_test_30", answer_format="gsm8k"))

    def accuracy(strategy):
        return tts.run(strategy, problems, DemoBackend(problems), progress=False).summary["accuracy"]

    one, sixteen = accuracy(tts.self_consistency(n=1)), accuracy(tts.self_consistency(n=16))
    assert 0.2 <= one <= 0.5 and sixteen >= one + 0.3
    assert accuracy(tts.best_of_n(n=16)) >= sixteen
    outcome = tts.run(tts.best_of_n(n=16), problems, DemoBackend(problems), progress=False)
    curve = scaling_curve(outcome.results)
    for metric in ("maj_at_k", "best_of_k", "pass_at_k"):
        values = [row[metric] for row in curve]
        assert values[-1] > values[0] + 0.3 and values == sorted(values), (metric, values)

    proc = ttscale_cli_demo(tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "a scripted stand-in model (backend.script=demo)" in proc.stderr and "no result" in proc.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["accuracy"] >= 0.6
    bad = ttscale("backend=demo", "backend.demo_accuracy=1.5", f"hydra.run.dir={tmp_path / 'bad'}")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1] == (
        "ttscale: backend.demo_accuracy=1.5: how often the stand-in answers right, in [0, 1]")


def ttscale_cli_demo(tmp_path):
    return ttscale("backend=demo", "strategy=deepconf", "strategy.n=8", "progress=false", f"hydra.run.dir={tmp_path}")
