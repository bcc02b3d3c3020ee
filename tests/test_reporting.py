"""Results a paper can use (#39): the analysis at 0/N and N/N, field measures checked by hand, stand-in
runs named as such, sweeps that extend and datasets compared by content, seeds as one row, and the
one-line refusals. On the scripted stand-in and backend=demo, so no engine starts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from math import comb
from pathlib import Path

import pytest

from ttscale.results.curves import field_metrics, g_pass_at_k, mg_pass_at_k, sample_accuracy
from ttscale.types import Candidate, Result

REPO = Path(__file__).resolve().parents[1]


def run(*args, timeout=300, cwd=None):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd or REPO)


def ttscale(*args, **kwargs):
    return run("-m", "ttscale.cli", *args, **kwargs)


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def test_intervals_are_exact_at_zero_and_one():
    from ttscale.analysis import wilson_ci
    from ttscale.analysis.compare import mcnemar_exact

    for n in (1, 7, 10, 40, 1000):
        low, high = wilson_ci(0, n)
        assert low == 0.0 and 0 < high < 1  # not 2.8e-17
        low, high = wilson_ci(n, n)
        assert high == 1.0 and 0 < low < 1  # not 0.9999999999999999
        for method in ("wilson", "exact"):
            for k in range(0, n + 1, max(1, n // 5)):
                low, high = wilson_ci(k, n, method=method)
                assert 0.0 <= low <= k / n <= high <= 1.0
    assert wilson_ci(3, 4, method="exact") == pytest.approx((0.194, 0.994), abs=1e-3)  # Clopper-Pearson
    from scipy.stats import binomtest  # the closed form is scipy's own Wilson interval

    for n in (1, 2, 7, 30, 120, 1000):
        for k in range(n + 1):
            for level in (0.9, 0.95, 0.99):
                ci = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
                assert wilson_ci(k, n, level) == pytest.approx((ci.low, ci.high), abs=1e-12), (k, n, level)
    assert mcnemar_exact(1, 7) == pytest.approx(2 * (comb(8, 0) + comb(8, 1)) / 2 ** 8)


def test_zero_and_full_runs_go_through_the_analysis_and_the_leaderboard_script(tmp_path):
    """0/N (the scripted stand-in never answers right) and N/N (backend=demo at accuracy 1): curves,
    the leaderboard, every compute plot, comparisons.md and its first line."""
    out = tmp_path / "lb"
    proc = run("evals/leaderboard.py", "--out", str(out), "--strategies", "self_consistency,best_of_n",
               "--budgets", "1,2", "--baseline", "self_consistency", "--", "backend=scripted", "dataset.limit=5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = (out / "leaderboard.md").read_text()
    assert board.startswith("Not matched on compute") and "| 0 | [0, 0.4345] |" in board
    comparisons = (out / "comparisons.md").read_text()
    assert "3 comparisons against one baseline" in comparisons and "Bonferroni" in comparisons
    for name in ("compute_tokens.png", "compute_flops.png", "compute_wall.png"):
        assert (out / name).stat().st_size > 1000, name
    full = tmp_path / "full"
    proc = ttscale("-m", "backend=demo", "backend.demo_accuracy=1", "strategy.n=1,4", "dataset.limit=6",
                   "progress=false", f"hydra.sweep.dir={full}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = run("-m", "ttscale.analysis", str(full), "--out", str(tmp_path / "fullout"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = next(p for p in full.iterdir() if p.name.endswith("strategy.n=4"))
    assert (job / "curve.png").stat().st_size > 1000
    summary = summary_of(job)
    assert summary["accuracy"] == 1.0 and summary["accuracy_ci95"][1] == 1.0 and summary["pass_at_k"]["4"] == 1.0


def test_field_measures_by_hand():
    def cands(flags):
        return [Candidate(text="", answer=str(i), score=None, num_tokens=1, finish_reason="stop", group=i,
                          correct=flag) for i, flag in enumerate(flags)]

    a = Result("a", "0", cands([True, True, False, False]), correct=True)   # c = 2 of n = 4
    b = Result("b", None, cands([False, False, False, True]), correct=False)  # c = 1, no answer chosen
    # G-Pass@k_tau = sum_{j >= ceil(tau k)} C(c, j) C(n - c, k - j) / C(n, k)
    assert g_pass_at_k(4, 2, 2, 1.0) == pytest.approx(comb(2, 2) / comb(4, 2))
    assert g_pass_at_k(4, 2, 2, 0.5) == pytest.approx(1 - comb(2, 2) / comb(4, 2))  # at least one: pass@2
    assert g_pass_at_k(4, 1, 4, 0.25) == 1.0 and g_pass_at_k(4, 1, 4, 0.5) == 0.0
    # mG-Pass@4 = (2/4) (G-Pass@4_{3/4} + G-Pass@4_{4/4})
    assert mg_pass_at_k(4, 3, 4) == pytest.approx(0.5 * (1.0 + 0.0))
    avg = sample_accuracy([a, b])
    # pass@1[avg-of-4] = (2/4 + 1/4) / 2; per sample position: 1/2, 1/2, 0, 1/2
    assert avg["mean"] == pytest.approx(0.375)
    positions = [0.5, 0.5, 0.0, 0.5]
    mean = sum(positions) / 4
    assert avg["std"] == pytest.approx((sum((p - mean) ** 2 for p in positions) / 3) ** 0.5)
    metrics = field_metrics([a, b])
    assert metrics["no_answer_rate"] == 0.5
    assert metrics["g_pass_at_k"][2]["1.0"] == pytest.approx((1 / 6 + 0) / 2)
    assert metrics["maj_at_k"][4] == 0.5  # the first of the tied groups wins: a right, b wrong
    assert set(metrics["g_pass_at_k"][4]) == {"0.25", "0.5", "0.75", "1.0"}


def test_a_stand_in_run_never_carries_a_real_models_identity(tmp_path):
    proc = ttscale("backend=demo", "strategy.n=2", "dataset.limit=3", "progress=false", f"hydra.run.dir={tmp_path / 'r'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("STAND-IN RUN: backend=demo is no model")
    summary = summary_of(tmp_path / "r")
    assert summary["model"] == "demo stand-in (not smollm2-135m)" and summary["backend"] == "demo"
    assert summary["stand_in"] is True
    prov = summary["provenance"]
    assert prov["stand_in"] and prov["engine"] is None and "sha256" not in prov["model"]
    proc = run("-m", "ttscale.analysis", str(tmp_path / "r"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    board = (tmp_path / "r" / "leaderboard.md").read_text()
    assert "**Stand-in runs**" in board and "demo stand-in (not smollm2-135m)" in board
    from ttscale.analysis.__main__ import curve_title

    assert "demo stand-in (not smollm2-135m)" in curve_title(tmp_path / "r", [{"problems": 3}])


def test_every_compute_measure_of_the_leaderboard_is_in_the_summary(tmp_path):
    proc = ttscale("backend=demo", "strategy=particle_filtering", "strategy.n=2", "verifier=self_eval",
                   "dataset.limit=2", "progress=false", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = summary_of(tmp_path)
    assert summary["verifier_tokens_per_problem"] > 0 and summary["verifier_calls_per_problem"] > 0
    assert summary["tokens_per_problem"] == pytest.approx(summary["completion_tokens_per_problem"]
                                                          + summary["verifier_tokens_per_problem"])
    from ttscale.analysis.report import leaderboard

    (row,) = leaderboard([tmp_path])
    for key in ("tokens_per_problem", "verifier_tokens_per_problem", "verifier_calls_per_problem",
                "fresh_prompt_tokens_per_problem", "flops_per_problem", "wall_seconds_per_problem",
                "latency_p50_seconds", "latency_p95_seconds", "pass_at_1_avg_of_n", "no_answer_rate"):
        assert key in summary and row[key] == pytest.approx(summary[key]), key


def test_a_sweep_extends_and_a_dataset_is_the_same_however_it_is_spelled(tmp_path):
    sweep = tmp_path / "sweep"
    first = ttscale("-m", "backend=demo", "strategy.n=1,2", "dataset.limit=4", "progress=false", f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr[-2000:]
    more = ttscale("-m", "backend=demo", "strategy.n=1,2,4", "dataset.limit=4", "progress=false", f"hydra.sweep.dir={sweep}")
    assert more.returncode == 0, more.stderr[-2000:]
    jobs = {p.name: summary_of(p) for p in sweep.iterdir() if (p / "summary.json").exists()}
    assert sorted(jobs) == [f"backend=demo,dataset.limit=4,strategy.n={n}" for n in (1, 2, 4)]
    assert [jobs[f"backend=demo,dataset.limit=4,strategy.n={n}"]["resumed"] for n in (1, 2, 4)] == [4, 4, 0]
    # the finished jobs start no backend; the new one does (the demo stand-in is built once, for it)
    assert more.stderr.count("nothing to generate, no scripted backend started") == 2
    assert more.stderr.count("ttscale: a scripted stand-in model") == 1, more.stderr[-2000:]
    # nothing generated in that part: no rate, never 0 tokens/s; the accuracy is the run's, unchanged
    done = jobs["backend=demo,dataset.limit=4,strategy.n=1"]
    assert done["completion_tokens_per_second"] is None and done["accuracy"] is not None
    # one file spelled relative and absolute (and a copy): the same data, resumed, not refused
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}\n#### {2 * i}"} for i in range(3)]
    (data / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["backend=demo", "dataset=gsm8k", "dataset.limit=2", "progress=false", f"hydra.run.dir={tmp_path / 'r'}"]
    rel = ttscale(*args, "dataset.source=data/d.jsonl", cwd=tmp_path)
    assert rel.returncode == 0, rel.stderr[-2000:]
    absolute = ttscale(*args, f"dataset.source={data / 'd.jsonl'}", cwd=tmp_path)
    assert absolute.returncode == 0, absolute.stderr[-2000:]
    assert summary_of(tmp_path / "r")["resumed"] == 2


def test_seeds_are_one_row_with_mean_sd_and_count(tmp_path):
    sweep = tmp_path / "seeds"
    proc = ttscale("-m", "backend=demo", "seed=0,1,2", "strategy.n=1,4", "dataset.limit=10", "progress=false",
                   f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    from ttscale.analysis.report import leaderboard

    rows = leaderboard([sweep])
    assert len(rows) == 2 and all(r["seeds"] == 3 for r in rows)
    for row in rows:
        accuracies = [summary_of(Path(p))["accuracy"] for p in row["seed_runs"]]
        mean = sum(accuracies) / 3
        assert row["accuracy"] == pytest.approx(mean)
        assert row["accuracy_sd"] == pytest.approx((sum((a - mean) ** 2 for a in accuracies) / 2) ** 0.5)
        assert row["cell"].endswith("(3 seeds)") and "seed=" not in row["cell"]
    separate = leaderboard([sweep], aggregate_seeds=False)
    assert len(separate) == 6


def test_comparisons_say_when_the_interval_and_mcnemar_disagree():
    from ttscale.analysis.compare import compare_results, multiplicity_note, verdicts_agree

    assert verdicts_agree((0.01, 0.2), 0.08) is not None and verdicts_agree((-0.01, 0.2), 0.03) is not None
    assert verdicts_agree((0.01, 0.2), 0.01) is None and verdicts_agree((-0.1, 0.2), 0.5) is None
    assert multiplicity_note(1) is None and "Bonferroni" in multiplicity_note(3)
    # 6 wins, 0 losses in 40: the bootstrap interval excludes 0 while McNemar's p = 0.031
    a = {f"p{i}": Result(f"p{i}", "1", correct=i < 6) for i in range(40)}
    b = {f"p{i}": Result(f"p{i}", "1", correct=False) for i in range(40)}
    outcome = compare_results(a, b)
    assert outcome["wins"] == 6 and outcome["mcnemar_p"] == pytest.approx(2 / 64)
    assert outcome["disagreement"] is None  # both see it
    a5 = {k: Result(k, "1", correct=int(k[1:]) < 5) for k in a}  # 5 of 0: p = 0.0625, interval [0.025, 0.225]
    outcome = compare_results(a5, b)
    assert outcome["difference_ci95"][0] > 0 and outcome["mcnemar_p"] > 0.05
    assert "not established" in outcome["disagreement"]


@pytest.mark.parametrize("args, says", [
    (["model=hf"], "ttscale: model=hf needs model.path=<a Hugging Face id or a local model folder>"),
    (["model=hf", "model.path=/no/such/model"], "ttscale: model.path=/no/such/model: no such model folder"),
])
def test_a_model_that_cannot_load_is_refused_before_the_engine_starts(args, says, tmp_path):
    proc = ttscale(*args, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2 and proc.stderr.strip().startswith(says), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "starting the vllm engine" not in proc.stderr


def test_a_sandbox_that_cannot_run_and_an_unscored_reselection_are_one_line(tmp_path):
    env_path = str(Path(sys.executable).parent)  # no bwrap on this PATH
    proc = subprocess.run([sys.executable, "-m", "ttscale.cli", "backend=demo", "dataset=humaneval", "dataset.limit=1",
                           "grader.isolation=bwrap", "progress=false", f"hydra.run.dir={tmp_path / 'code'}"],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PATH": env_path}, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith(
        "ttscale: grader.isolation=bwrap: bubblewrap (bwrap) is not installed"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    done = ttscale("backend=demo", "dataset.limit=2", "progress=false", f"hydra.run.dir={tmp_path / 'sc'}")
    assert done.returncode == 0, done.stderr[-2000:]
    proc = run("evals/reselect.py", str(tmp_path / "sc"), "--select", "best_score", "--out", str(tmp_path / "re"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == (f"reselect.py: {tmp_path / 'sc'}: best_score: no trajectory has a score; give the "
                                   "Strategy a verifier (verifier=...), or a search that scores its trajectories")


def test_the_example_figures_in_docs_are_made_by_this_test(tmp_path):
    """One figure per plot kind (a scaling curve, accuracy against compute with seeds as error bars),
    from a backend=demo sweep. TTSCALE_WRITE_FIGURES=1 writes them into docs/figures (they are kept
    there, looked at, and linked from the README)."""
    from PIL import Image

    sweep = tmp_path / "sweep"
    proc = ttscale("-m", "backend=demo", "strategy=self_consistency,best_of_n", "strategy.n=1,4,16", "seed=0,1",
                   "progress=false", f"hydra.sweep.dir={sweep}", timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "report"
    proc = run("-m", "ttscale.analysis", str(sweep), "--out", str(out), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    curve = sweep / "backend=demo,seed=0,strategy.n=16,strategy=best_of_n" / "curve.png"
    figures = {"curve.png": curve, "compute_tokens.png": out / "compute_tokens.png"}
    for name, made in figures.items():
        width, height = Image.open(made).size
        assert width > 500 and height > 350, (name, width, height)
    docs = REPO / "docs" / "figures"
    if os.environ.get("TTSCALE_WRITE_FIGURES") == "1":
        docs.mkdir(parents=True, exist_ok=True)
        for name, made in figures.items():
            (docs / name).write_bytes(made.read_bytes())
    for name in figures:
        assert (docs / name).stat().st_size > 10_000, f"docs/figures/{name}: rerun with TTSCALE_WRITE_FIGURES=1"
