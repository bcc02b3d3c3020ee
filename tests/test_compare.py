"""Paired comparison of two runs: hand-made runs with known differences."""

from __future__ import annotations

import json
import subprocess
import sys
from math import comb

import pytest

from ttscale.analysis.compare import compare_results, mcnemar_exact
from ttscale.types import Result, Usage


def runs(outcomes: str, tokens: int = 10, prefix: str = "p") -> dict[str, Result]:
    """One result per character: '1' right, '0' wrong, 'e' errored, '?' undecided."""
    made = {}
    for i, ch in enumerate(outcomes):
        r = Result(f"{prefix}{i}", "x", usage=Usage(completion_tokens=tokens, verifier_tokens=tokens // 2))
        r.correct = {"1": True, "0": False, "e": False, "?": None}[ch]
        r.error = "RuntimeError: boom" if ch == "e" else None
        made[r.problem_id] = r
    return made


def test_known_difference_mcnemar_and_wins():
    a, b = runs("1111111100"), runs("1100000000")  # A right on 6 more, never worse
    c = compare_results(a, b, params=(1e8, 1e8))
    assert c["problems"] == 10 and c["wins"] == 6 and c["losses"] == 0 and c["ties"] == 4
    assert c["difference"] == pytest.approx(0.6)
    low, high = c["difference_ci95"]
    assert 0 < low < 0.6 < high <= 1.0
    assert c["mcnemar_p"] == pytest.approx(2 * 0.5 ** 6)  # all 6 discordant the same way
    assert c["compute_a"]["generated_tokens_per_problem"] == 10 and c["compute_a"]["flops_per_problem"] > 0


def test_identical_runs_give_zero_with_a_degenerate_interval():
    a = runs("1010110")
    c = compare_results(a, dict(a))
    assert c["difference"] == 0 and c["difference_ci95"] == (0.0, 0.0) and c["mcnemar_p"] == 1.0
    assert c["wins"] == c["losses"] == 0


def test_exact_mcnemar_matches_the_binomial_tail():
    assert mcnemar_exact(0, 0) == 1.0
    assert mcnemar_exact(1, 7) == pytest.approx(min(1.0, 2 * sum(comb(8, i) for i in range(2)) / 2 ** 8))
    assert mcnemar_exact(5, 5) == 1.0


def test_dropped_problems_are_counted_and_disjoint_runs_refused():
    a, b = runs("11e?1"), runs("1011")
    c = compare_results(a, b)
    # p2 errored in A, p3 undecided in A, p4 missing in B: two problems compared
    assert c["problems"] == 2 and c["dropped"] == {"errored": 1, "not graded": 1, "missing in B": 1}
    with pytest.raises(ValueError, match="share no comparable problem"):
        compare_results(runs("11", prefix="a"), runs("11", prefix="b"))


def test_the_compare_command(tmp_path):
    folders = []
    for name, outcomes in (("base", "1100"), ("new", "1110")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "results.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in runs(outcomes).values()))
        folders.append(str(folder))
    out = tmp_path / "c.json"
    proc = subprocess.run([sys.executable, "-m", "ttscale.analysis", "compare", folders[0], folders[1], "--json", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "difference A - B: +0.250" in proc.stdout and "exact McNemar p = 1" in proc.stdout
    (saved,) = json.loads(out.read_text())
    assert saved["wins"] == 1 and saved["b"] == folders[0]
    bad = subprocess.run([sys.executable, "-m", "ttscale.analysis", "compare", folders[0], str(tmp_path / "nope")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "no results.jsonl" in bad.stderr


def test_reselect_gives_another_selection_of_the_same_samples_a_run_folder_compare_reads(tmp_path):
    from pathlib import Path

    from ttscale.analysis.compare import compare_runs
    from ttscale.types import Candidate

    def cand(answer, group, correct, score):
        return Candidate(text=f"... {answer}", answer=answer, score=score, num_tokens=5, finish_reason="stop",
                         group=group, correct=correct)

    run = tmp_path / "vvote"
    run.mkdir()
    rows = [  # majority picks "1" (2 votes); the best score is the lone "2"
        Result("p0", "1", [cand("1", 0, False, 0.2), cand("1", 0, False, 0.3), cand("2", 1, True, 0.9)],
               Usage(completion_tokens=15), correct=False, info={"chosen": 0}),
        Result("p1", "3", [cand("3", 0, True, 0.8), cand("4", 1, False, 0.1)], Usage(completion_tokens=10),
               correct=True, info={"chosen": 0}),
    ]
    (run / "results.jsonl").write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))
    (run / "config.yaml").write_text("strategy:\n  select: weighted_vote\nmodel:\n  params: 1000000000.0\n")
    script = Path(__file__).resolve().parents[1] / "evals" / "reselect.py"
    out = tmp_path / "bon"
    done = subprocess.run([sys.executable, str(script), str(run), "--select", "best_score", "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "summary.json").read_text())["accuracy"] == 1.0
    assert "select: best_score" in (out / "config.yaml").read_text()
    outcome = compare_runs(run, out)
    assert outcome["wins"] == 0 and outcome["losses"] == 1 and outcome["difference"] == -0.5
    assert outcome["compute_a"] == outcome["compute_b"]  # the same samples: the same compute
