"""Decisions replayed on a recorded trace, without the model, where that is possible.

- A selection (majority, best_score, weighted_vote) over the recorded candidates: their answers,
  answer groups, scores and grades are in the trace, so the choice and its grade are exact.
- A particle filter's resampling under another rule (scheme, weight temperature): the recorded rewards
  of each round give the new weights and draws. Exact for the first resampling round; from then on the
  particles a different draw keeps were never extended, so the replay stops at the first round whose
  draw of unfinished particles differs from the recorded one (as a multiset: copies count) and says
  so: the rounds after it need the model. (Finished particles are not extended again: their draws
  may differ freely.)
- Anything else a search decided (beam pruning, MCTS's tree policy, DeepConf's aborts, budget
  forcing, a judge's verdicts) produced text that a different decision would not have: not replayable
  without the model (`replayable` says which parts of a trace are).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ttscale.strategies.context import derive_seed
from ttscale.strategies.select import BestScore, MajorityVote, WeightedVote
from ttscale.strategies.step.resampling import SCHEMES, resample, softmax_logit_weights
from ttscale.types import Trajectory

SELECTIONS = {"majority": MajorityVote, "best_score": BestScore, "weighted_vote": lambda: WeightedVote("score")}


def replayable(trace: dict) -> dict[str, str]:
    """What of this trace can be replayed without the model, and what cannot (with why)."""
    kinds = Counter(d["kind"] for d in trace.get("decisions", []))
    out = {}
    out["selection"] = ("yes: over the recorded candidates" if trace.get("candidates")
                        else "no: the problem has no candidates")
    if kinds.get("resampled") or (kinds.get("kept") and any("weights" in d for d in trace["decisions"])):
        out["resampling"] = "up to the first round whose draw differs: later rounds' particles were never generated"
    for kind in sorted(k for k in kinds if k not in ("resampled", "kept", "selected", "output")):
        out[kind] = "no: a different decision would have generated text the trace does not hold"
    return out


def reselect(trace: dict, rule: str) -> dict:
    """The recorded candidates selected again by `rule`: the chosen index, answer and grade."""
    if rule not in SELECTIONS:
        raise ValueError(f"rule={rule!r}; choose one of: {', '.join(SELECTIONS)}")
    candidates = trace.get("candidates", [])
    trajectories = [Trajectory(text="", num_tokens=c.get("tokens") or 0, finish_reason=c.get("finish_reason"),
                               score=c.get("score"), answer=c.get("answer")) for c in candidates]
    groups = [c.get("group") if c.get("answer") is not None else None for c in candidates]
    selection = SELECTIONS[rule]()(trajectories, groups)
    chosen = selection.index
    return {"problem": trace["problem"], "rule": rule, "chosen": chosen,
            "answer": None if chosen is None else candidates[chosen].get("answer"),
            "correct": None if chosen is None else candidates[chosen].get("correct"),
            "recorded_correct": trace.get("correct")}


def replay_resampling(trace: dict, scheme: str, temperature: float = 1.0, seed: int = 0) -> dict:
    """Each recorded resampling round redrawn under `scheme` and `temperature` from the recorded rewards,
    until a draw differs from the recorded one: {"rounds": [...], "diverged_at": round or None}."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme={scheme!r}; choose one of: {', '.join(SCHEMES)}")
    rng = np.random.default_rng(derive_seed(seed, trace["problem"], "replay"))
    finished = {n["id"] for n in trace.get("nodes", []) if n.get("finished")}
    rounds, diverged = [], None
    for decision in trace.get("decisions", []):
        if decision["kind"] not in ("resampled", "kept") or "rewards" not in decision:
            continue
        nodes, rewards = decision["nodes"], decision["rewards"]
        if any(r is None for r in rewards):
            rounds.append({"round": decision.get("round"), "replayed": False, "why": "a reward is missing"})
            diverged = decision.get("round")
            break
        weights = softmax_logit_weights(rewards, temperature)
        drawn = [nodes[i] for i in resample(weights, len(nodes), scheme, rng)]
        recorded = decision.get("drawn", nodes)
        # a finished particle is not extended again: only the unfinished ones drawn must match
        same = Counter(d for d in drawn if d not in finished) == Counter(r for r in recorded if r not in finished)
        rounds.append({"round": decision.get("round"), "replayed": True, "weights": weights.tolist(),
                       "drawn": drawn, "recorded": recorded, "same": same})
        if not same:
            diverged = decision.get("round")
            break
    return {"problem": trace["problem"], "scheme": scheme, "temperature": temperature, "rounds": rounds,
            "diverged_at": diverged}
