"""Self-certainty (Kang et al. 2025) and tail-entropy best-of-N (its_hub's ConfidenceSelection): the
token statistics by hand, each selection hand-worked, and the per-token series reaching the selection
through a whole run."""

import math

import pytest

from ttscale.confidence import (SERIES_KEYS, RunningStats, StatsSpec, concat_series, series_stats,
                                token_self_certainty, token_series, token_topk_entropy)
from ttscale.strategies.select import MissingStatistic, SelfCertainty, TailEntropy
from ttscale.types import Trajectory

LN = math.log


def test_self_certainty_is_kl_from_uniform_over_the_k_tokens_returned():
    # p = (0.5, 0.25): KL(U || p) = 0.5 ln(0.5 / 0.5) + 0.5 ln(0.5 / 0.25) = 0.5 ln 2
    assert token_self_certainty([LN(0.5), LN(0.25)]) == pytest.approx(0.5 * LN(2))
    assert token_self_certainty([LN(0.5), LN(0.5)]) == pytest.approx(0.0)  # uniform: no certainty
    # a sharper distribution is surer
    assert token_self_certainty([LN(0.9), LN(0.05)]) > token_self_certainty([LN(0.6), LN(0.3)])


def test_topk_entropy_is_in_nats_and_not_renormalised():
    # (0.5, 0.25) as returned: 0.5 ln 2 + 0.25 ln 4 = ln 2 (renormalised to (2/3, 1/3) it would be 0.637)
    assert token_topk_entropy([LN(0.5), LN(0.25)]) == pytest.approx(LN(2), abs=1e-8)
    assert token_topk_entropy([0.0]) == pytest.approx(0.0, abs=1e-8)


def test_running_and_whole_series_statistics_agree_with_the_new_keys():
    sampled = [-0.1, -0.7, -0.2, -1.5]
    tops = [[LN(0.9), LN(0.05)], [LN(0.5), LN(0.3)], [LN(0.8), LN(0.1)], [LN(0.4), LN(0.35)]]
    series = token_series(sampled, tops)
    assert tuple(series) == SERIES_KEYS
    whole = series_stats(series, StatsSpec(window=2, tail=2))
    assert whole["self_certainty"] == pytest.approx(sum(token_self_certainty(t) for t in tops) / 4)
    assert whole["self_certainty"] == pytest.approx(whole["mean_confidence"] - LN(2))  # C_t - log k
    running = RunningStats(StatsSpec(window=2, tail=2), keep_series=True)
    running.update(sampled[:1], tops[:1])
    running.update(sampled[1:], tops[1:])
    assert running.stats() == whole and running.series() == series
    assert running.position(1) == {k: series[k][1] for k in SERIES_KEYS if k != "sampled"}
    # series of consecutive pieces concatenate into the series of the whole
    assert concat_series([token_series(sampled[:2], tops[:2]), token_series(sampled[2:], tops[2:])]) == series


def traj(answer, certainty=None, entropies=None):
    stats = {} if certainty is None else {"self_certainty": certainty}
    series = None if entropies is None else {"topk_entropy": list(entropies)}
    return Trajectory(text=str(answer), answer=answer, stats=stats, series=series)


def test_borda_votes_by_rank_and_a_sample_without_an_answer_keeps_its_rank():
    # certainty 0.9, 0.1, 0.5, 0.3 -> ranks 1, 4, 2, 3; answers A, B, B, none
    ts = [traj("A", 0.9), traj("B", 0.1), traj("B", 0.5), traj(None, 0.3)]
    groups = [0, 1, 1, None]
    # p = 0.5: A gets sqrt(4) = 2, B gets sqrt(3) + sqrt(1) = 2.73 (the unanswered rank-3 sample's
    # sqrt(2) is dropped, and the rank-4 sample stays rank 4): B, returned as its first sample
    chosen = SelfCertainty()(ts, groups)
    assert chosen.index == 1 and chosen.info["rank"] == [1, 4, 2, 3]
    assert chosen.info["weights"] == {"B": pytest.approx(math.sqrt(3) + 1, abs=1e-6), "A": 2.0}
    assert SelfCertainty(power=0)(ts, groups).index == 1  # p = 0: a plain majority, B 2 - 1
    assert SelfCertainty(power=2)(ts, groups).index == 0  # p = 2: A 16, B 9 + 1
    tie = SelfCertainty(power=1)(ts, groups)  # A 4, B 3 + 1: the answer sampled first
    assert tie.index == 0 and tie.info["tie"] == ["A", "B"]


def test_best_is_the_most_self_certain_sample_with_an_answer():
    ts = [traj(None, 0.95), traj("A", 0.4), traj("B", 0.6), traj("C", 0.6)]
    assert SelfCertainty(vote="best")(ts, [None, 0, 1, 2]).index == 2  # equal: the earlier
    assert SelfCertainty(vote="best")([traj(None, 0.1), traj(None, 0.9)], [None, None]).index == 0  # the script's


def test_a_sample_without_self_certainty_is_an_error_never_a_rank():
    with pytest.raises(MissingStatistic, match="self_certainty"):
        SelfCertainty()([traj("A", 0.5), traj("A")], [0, 0])
    with pytest.raises(ValueError, match="choose one of: borda, best"):
        SelfCertainty(vote="mean")


def test_tail_window_adapts_to_length_and_entropy():
    ts = [traj("a", entropies=[2.0] * 10 + [0.1] * 10), traj("b", entropies=[0.5] * 20),
          traj("c", entropies=[0.2] * 5 + [3.0] * 15)]
    groups = [0, 1, 2]
    # mean length 20, mean entropy (1.05 + 0.5 + 2.3) / 3: window sqrt(20) / 1.2833 = 3.48 -> 3 tokens
    narrow = TailEntropy(tail_min=1)(ts, groups)
    assert narrow.info["tail_window"] == 3 and narrow.index == 0  # last three: 0.1 < 0.5 < 3.0
    # its_hub's floor of 64 tokens takes whole samples: medians 1.05, 0.5, 3.0
    wide = TailEntropy()(ts, groups)
    assert wide.info["tail_window"] == 64 and wide.index == 1
    assert wide.info["tail_entropy"] == [1.05, 0.5, 3.0]
    assert TailEntropy(tail_min=1, agg="mean")(ts, groups).index == 0


def test_length_outliers_are_left_out_from_sixteen_samples():
    # a one-token sample with zero entropy would win; among 16 its length is below the 5th percentile
    ts = [traj("x", entropies=[1.0] * 10) for _ in range(14)] + [traj("y", entropies=[0.9] * 10),
                                                                  traj("z", entropies=[0.0])]
    chosen = TailEntropy()(ts, list(range(16)))
    assert chosen.index == 14 and chosen.info["left_out"] == [15] and chosen.info["tail_entropy"][15] is None
    # fifteen samples: nobody is trimmed, and the short one wins
    assert TailEntropy()(ts[1:], list(range(15))).index == 14


def test_tail_entropy_answers_missing_series_and_empty_samples():
    ts = [traj(None, entropies=[0.1] * 4), traj("A", entropies=[0.5] * 4), traj("B", entropies=[])]
    assert TailEntropy()(ts, [None, 0, 1]).index == 0  # its_hub's: any sample may win
    assert TailEntropy(require_answer=True)(ts, [None, 0, 1]).index == 1
    assert TailEntropy()([traj("B", entropies=[])], [0]).index is None  # nothing generated: nothing to pick
    with pytest.raises(MissingStatistic, match="per-token entropies"):
        TailEntropy()([traj("A", entropies=[0.1]), traj("B")], [0, 1])


def test_the_series_reach_the_selection_through_a_run_on_the_scripted_backend():
    import ttscale
    from ttscale.build import build_strategy
    from ttscale.config import group_config

    backend = ttscale.ScriptedBackend(lambda prompt, params, i: ["The answer is 4.", "I think it is 5.",
                                                                 "Maybe 4."][i % 3], synthetic_logprobs=20)
    problems = [ttscale.Problem(id="p", question="2 + 2?", answer="4")]
    for name in ("tail_entropy", "self_certainty"):
        cfg = {**group_config("strategy", name), "n": 3}
        strategy = build_strategy(cfg, {}, backend, None)
        assert strategy.search.params.keep_series is (name == "tail_entropy")
        (result,) = ttscale.run(strategy, problems, backend, progress=False).results
        assert result.error is None and len(result.candidates) == 3, result.error
        if name == "tail_entropy":
            scores = result.info["tail_entropy"]
            assert result.info["chosen"] == scores.index(min(scores)) and result.info["tail_window"] == 64
        else:
            assert all(c.stats["self_certainty"] >= 0 for c in result.candidates)


@pytest.mark.integration
def test_both_selections_on_the_cpu_engine(vllm_backend, tmp_path):
    """SmolLM2's real top-20 logprobs: every sample's self-certainty is its mean confidence minus log 20
    (and >= 0); tail entropy picks the sample its scores name, over a window within its bounds."""
    from engine_jobs import run_job

    for name in ("self_certainty", "tail_entropy"):
        summary, (row,) = run_job(vllm_backend, [f"strategy={name}", "dataset.limit=1", "strategy.n=4",
                                                 "strategy.max_tokens=48"], tmp_path / name)
        assert summary["errors"] == 0 and len(row["candidates"]) == 4, row.get("error")
        stats = [c["stats"] for c in row["candidates"]]
        assert all(s["self_certainty"] == pytest.approx(s["mean_confidence"] - LN(20)) for s in stats)
        assert all(s["self_certainty"] >= 0 for s in stats)
        if name == "tail_entropy":
            scores = row["info"]["tail_entropy"]
            assert 64 <= row["info"]["tail_window"] <= 2048 and all(s >= 0 for s in scores)
            assert row["info"]["chosen"] == scores.index(min(scores))
        else:
            ranks = row["info"]["rank"]
            assert sorted(ranks) == [1, 2, 3, 4]
            assert ranks.index(1) == max(range(4), key=lambda i: (stats[i]["self_certainty"], -i))


def test_a_trim_that_would_leave_nothing_keeps_every_sample():
    # 16 lengths 1..16: the 49th and 51st percentiles are 8.35 and 8.65, no length between them
    ts = [traj(str(k), entropies=[1.0 / k] * k) for k in range(1, 17)]
    chosen = TailEntropy(trim_pct=0.49)(ts, list(range(16)))
    assert chosen.info["left_out"] == [] and chosen.index == 15  # the longest sample has the lowest entropy


def test_tail_entropy_needs_a_search_that_keeps_the_series():
    from ttscale.build import ConfigError, build_strategy
    from ttscale.config import group_config

    with pytest.raises(ConfigError, match="strategy.search='beam_search' does not keep them"):
        build_strategy({**group_config("strategy", "beam_search"), "select": "tail_entropy"}, {"name": "self_eval"})
    for search in ("parallel", "adaptive", "deepconf_online"):  # these carry the series when the params ask
        assert build_strategy({**group_config("strategy", "tail_entropy"), "search": search, "n": 16, "warmup": 4}) is not None
