import pytest

from ttscale.analysis import bootstrap_ci
from ttscale.config import group_config


def test_bootstrap_ci_brackets_the_mean_and_is_deterministic():
    values = [1.0] * 13 + [0.0] * 37
    low, high = bootstrap_ci(values)
    assert low < 13 / 50 < high
    assert 0.12 < low < 0.17 and 0.35 < high < 0.40  # about +-0.12 for p=0.26, n=50
    assert bootstrap_ci(values) == (low, high)


def test_bootstrap_by_level_counts_matches_resampling_problems():
    # few distinct values are resampled by their counts (multinomial): the same distribution as drawing
    # problems with replacement, which many-valued data still uses
    import numpy as np

    rng = np.random.default_rng(1)
    for values in ([1.0] * 130 + [0.0] * 370, list(rng.choice([0.0, 0.25, 0.5, 1.0], size=300))):
        data = np.asarray(values)
        means = data[rng.integers(0, data.size, size=(20_000, data.size))].mean(axis=1)
        expected = np.quantile(means, [0.025, 0.975])
        assert bootstrap_ci(values) == pytest.approx(tuple(expected), abs=0.006)
    spread = list(rng.normal(size=200))
    low, high = bootstrap_ci(spread)
    assert low < np.mean(spread) < high and bootstrap_ci(spread) == (low, high)


def test_bootstrap_ci_degenerate_cases():
    assert bootstrap_ci([]) is None
    assert bootstrap_ci([1.0, 1.0, 1.0]) == (1.0, 1.0)


def test_group_config_merges_nested_prompt_group():
    cfg = group_config("dataset", "math500")
    assert "\\boxed{}" in cfg["prompt"]["user"]
    assert group_config("dataset", "gsm8k_fixture")["prompt"]["few_shot"]
