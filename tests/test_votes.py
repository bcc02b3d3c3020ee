import math

import pytest

from ttscale.strategies.select import DeepConfVote, RPCVote, WeightedVote
from ttscale.strategies.select.rpc import low_component_members
from ttscale.types import Trajectory


def traj(answer, text=None, **stats):
    return Trajectory(text=text or f"path to {answer} {stats}", answer=answer, stats=stats)


def test_inverse_entropy_vote_by_hand():
    # A: 1/0.5 + 1/0.5 = 4; B: 1/0.1 = 10 -> B wins although A has more votes
    ts = [traj("A", mean_entropy=0.5), traj("A", mean_entropy=0.5), traj("B", mean_entropy=0.1)]
    sel = WeightedVote("inverse_entropy")(ts, [0, 0, 1])
    assert sel.index == 2 and sel.info["weights"] == {"B": 10.0, "A": 4.0}


def test_equal_weights_reduce_to_majority_and_ties_go_first():
    ts = [traj("A", mean_entropy=1.0), traj("B", mean_entropy=1.0), traj("B", mean_entropy=1.0)]
    assert WeightedVote("inverse_entropy")(ts, [0, 1, 1]).index == 1
    tie = WeightedVote("inverse_entropy")(ts[:2], [0, 1])
    assert tie.index == 0 and tie.info["tie"] == ["A", "B"]


def test_score_weighted_vote_and_missing_answers():
    ts = [Trajectory("x", answer="1", score=0.2), Trajectory("y", answer=None, score=0.9),
          Trajectory("z", answer="2", score=0.3)]
    assert WeightedVote("score")(ts, [0, None, 1]).index == 2
    assert WeightedVote("score")([Trajectory("n", answer=None)], [None]).index is None


def test_single_trajectory():
    assert WeightedVote("mean_confidence")([traj("7", mean_confidence=2.0)], [0]).index == 0
    assert DeepConfVote(10)([traj("7", bottom_group_confidence=2.0)], [0]).index == 0
    assert RPCVote()([traj("7", mean_logprob=-0.2)], [0]).index == 0


def test_deepconf_keeps_top_eta_percent_then_weights_by_confidence():
    # 10 traces: eight say A with low confidence, two say B with the highest confidence
    ts = [traj("A", bottom_group_confidence=1.0 + i * 0.01) for i in range(8)]
    ts += [traj("B", bottom_group_confidence=5.0), traj("B", bottom_group_confidence=4.0)]
    groups = [0] * 8 + [1, 1]
    aggressive = DeepConfVote(eta=10)(ts, groups)  # keeps ceil(10% of 10) = 1 trace: the 5.0 B
    assert aggressive.info["kept"] == [8] and ts[aggressive.index].answer == "B"
    conservative = DeepConfVote(eta=90)(ts, groups)  # keeps 9: drops the least confident A
    assert 0 not in conservative.info["kept"] and len(conservative.info["kept"]) == 9
    # A: sum of 7 confidences ~ 7.2 against B: 9.0
    assert ts[conservative.index].answer == "B"


def test_deepconf_rejects_bad_settings():
    with pytest.raises(ValueError, match="eta"):
        DeepConfVote(eta=0)
    with pytest.raises(ValueError, match="confidence"):
        DeepConfVote(confidence="vibes")


def test_rpc_counts_distinct_paths_once():
    # A: the same path three times (counts once, p=0.5) + none; B: two distinct paths p=0.3 each
    ts = [traj("A", text="same", mean_logprob=math.log(0.5))] * 3
    ts += [traj("B", text="b1", mean_logprob=math.log(0.3)), traj("B", text="b2", mean_logprob=math.log(0.3))]
    sel = RPCVote(prune=False)(ts, [0, 0, 0, 1, 1])
    assert ts[sel.index].answer == "B"  # 0.6 > 0.5, although A has 3 votes
    assert sel.info["weights"] == {"B": pytest.approx(0.6), "A": pytest.approx(0.5)}


def test_rpc_pruning_drops_the_low_probability_cluster():
    high = [0.80, 0.82, 0.85, 0.78, 0.81, 0.83]
    low = [0.05, 0.04, 0.06, 0.05, 0.03, 0.05, 0.04, 0.06]
    members = low_component_members(high + low)
    assert members[: len(high)] == [False] * len(high)
    assert all(members[len(high):])
    # many low-probability paths to A would outvote B without pruning
    ts = [traj("B", text=f"b{i}", mean_logprob=math.log(p)) for i, p in enumerate(high[:4])]
    ts += [traj("A", text=f"a{i}", mean_logprob=math.log(p)) for i, p in enumerate(low * 10)]
    groups = [1] * 4 + [0] * (len(ts) - 4)
    assert ts[RPCVote(prune=False)(ts, groups).index].answer == "A"
    pruned = RPCVote(prune=True)(ts, groups)
    assert ts[pruned.index].answer == "B" and len(pruned.info["pruned"]) == len(ts) - 4
