import json
import math

import pytest

from ttscale.analysis.__main__ import main as analyze
from ttscale.results.curves import ks_for, pass_at_k, scaling_curve
from ttscale.types import Candidate, Result


def cand(group, correct, score=None):
    return Candidate(text="t", answer=str(group), score=score, num_tokens=1, finish_reason="stop", group=group,
                     correct=correct)


def test_pass_at_k_unbiased_estimator():
    assert pass_at_k(8, 0, 4) == 0.0
    assert pass_at_k(8, 8, 1) == 1.0
    assert pass_at_k(8, 2, 1) == pytest.approx(0.25)
    assert pass_at_k(8, 2, 4) == pytest.approx(1 - math.comb(6, 4) / math.comb(8, 4))
    assert pass_at_k(4, 1, 4) == 1.0


def test_ks():
    assert ks_for(8) == [1, 2, 4, 8] and ks_for(6) == [1, 2, 4, 6] and ks_for(1) == [1]


def test_curve_by_hand():
    # problem a: 3 of 4 samples correct (group 0), problem b: 1 of 4 correct
    a = Result("a", "0", [cand(0, True, 0.1), cand(0, True, 0.2), cand(0, True, 0.3), cand(1, False, 0.9)], correct=True)
    b = Result("b", "2", [cand(2, False, 0.5), cand(2, False, 0.4), cand(3, True, 0.8), cand(2, False, 0.1)], correct=False)
    rows = scaling_curve([a, b], subsets=2000, seed=1)
    assert [r["k"] for r in rows] == [1, 2, 4]
    k1, _, k4 = rows
    assert k1["pass_at_k"] == pytest.approx((0.75 + 0.25) / 2)
    assert k1["maj_at_k"] == pytest.approx(0.5, abs=0.04)  # maj@1 is per-sample accuracy
    assert k4["maj_at_k"] == pytest.approx(0.5)  # a right by vote, b wrong
    assert k4["best_of_k"] == pytest.approx(0.5)  # a: 0.9 is wrong; b: 0.8 is right
    assert k4["pass_at_k"] == 1.0 and k4["pass_at_k_ci95"][1] == 1.0 and k4["pass_at_k_ci95"][0] < 1.0  # Wilson


def test_analysis_command_writes_csv(tmp_path, capsys):
    a = Result("a", "0", [cand(0, True), cand(1, False)], correct=True)
    (tmp_path / "results.jsonl").write_text(json.dumps(a.to_dict()) + "\n")
    analyze([str(tmp_path)])
    out = capsys.readouterr().out
    assert "| k | maj_at_k | pass_at_k |" in out
    assert (tmp_path / "curve.csv").read_text().splitlines()[0].startswith("k,problems,maj_at_k")
