import math

import pytest

from ttscale.confidence import StatsSpec, sequence_stats, token_confidence, token_entropy_bits


def test_entropy_of_known_distributions():
    assert token_entropy_bits([math.log(0.5), math.log(0.5)]) == pytest.approx(1.0)
    assert token_entropy_bits([math.log(0.25)] * 4) == pytest.approx(2.0)
    assert token_entropy_bits([0.0]) == pytest.approx(0.0)
    # renormalised: top-2 of (0.4, 0.4, 0.2) is a fair coin
    assert token_entropy_bits([math.log(0.4), math.log(0.4)]) == pytest.approx(1.0)
    # a skewed coin: H(0.9) = 0.469 bits
    assert token_entropy_bits([math.log(0.9), math.log(0.1)]) == pytest.approx(0.4689955935892812)


def test_token_confidence_is_negative_mean_top_logprob():
    assert token_confidence([-0.1, -2.3, -4.6]) == pytest.approx(7.0 / 3)


def test_group_bottom_and_tail_confidence_by_hand():
    # token confidences 1, 2, 3, 4, 5 (top-1 logprobs -1..-5), window 2: groups 1.5 2.5 3.5 4.5
    tops = [[-float(c)] for c in (1, 2, 3, 4, 5)]
    stats = sequence_stats([-1.0, -2.0, -3.0, -4.0, -5.0], tops, StatsSpec(window=2, tail=3, bottom_frac=0.5))
    assert stats["mean_confidence"] == pytest.approx(3.0)
    assert stats["lowest_group_confidence"] == pytest.approx(1.5)
    assert stats["bottom_group_confidence"] == pytest.approx((1.5 + 2.5) / 2)
    assert stats["tail_confidence"] == pytest.approx(4.0)
    assert stats["sum_logprob"] == pytest.approx(-15.0)
    assert stats["perplexity"] == pytest.approx(math.exp(3.0))
    assert stats["mean_entropy"] == 0.0  # top-1: no uncertainty left after renormalising


def test_short_text_is_one_group_and_empty_text():
    stats = sequence_stats([-1.0, -1.0], [[-1.0, -2.0], [-1.0, -2.0]], StatsSpec(window=2048))
    assert stats["lowest_group_confidence"] == stats["mean_confidence"] == pytest.approx(1.5)
    assert sequence_stats([], []) == {"tokens": 0}


def test_summary_size_does_not_grow_with_length():
    long = sequence_stats([-0.5] * 20000, [[-0.5, -1.5, -3.0]] * 20000, StatsSpec(window=512))
    short = sequence_stats([-0.5] * 10, [[-0.5, -1.5, -3.0]] * 10)
    assert set(long) == set(short) and len(long) == 10
