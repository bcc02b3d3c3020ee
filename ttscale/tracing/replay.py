"""Decisions replayed on a recorded trace, without the model, where that is possible.

- A selection (majority, best_score, weighted_vote) over the recorded candidates: their answers,
  answer groups, scores and grades are in the trace, so the choice and its grade are exact.
- A particle filter's resampling under another rule (scheme, weight temperature, annealing): the
  recorded rewards of each round give the new weights, and the run's own random stream (its seed and
  the problem's) the draws, so the run's own rule draws every round again exactly as it did. Under
  another rule the particles a different draw keeps were never extended, so the replay stops at the
  first round whose draw of unfinished particles differs from the recorded one (as a multiset: copies
  count) and says so: the rounds after it need the model. (Finished particles are not extended again:
  their draws may differ freely.)
- Anything else a search decided (beam pruning, MCTS's tree policy, DeepConf's aborts, budget
  forcing, a judge's verdicts) produced text that a different decision would not have: not replayable
  without the model (`replayable` says which parts of a trace are).
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from ttscale.strategies.context import derive_seed
from ttscale.strategies.select import BestScore, MajorityVote, WeightedVote
from ttscale.strategies.step.resampling import (SCHEMES, annealing_temperature, effective_sample_size, resample,
                                                softmax_logit_weights)
from ttscale.types import Trajectory

SELECTIONS = {"majority": MajorityVote, "best_score": BestScore, "weighted_vote": lambda: WeightedVote("score")}


def replayable(trace: dict) -> dict[str, str]:
    """What of this trace can be replayed without the model, and what cannot (with why)."""
    kinds = Counter(d["kind"] for d in trace.get("decisions", []))
    out = {}
    out["selection"] = ("yes: over the recorded candidates" if trace.get("candidates")
                        else "no: the problem has no candidates")
    if kinds.get("setup") and (kinds.get("resampled") or kinds.get("kept")):
        out["resampling"] = "up to the first round whose draw differs: later rounds' particles were never generated"
    for kind in sorted(k for k in kinds if k not in ("setup", "resampled", "kept", "selected", "output")):
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


def replay_resampling(trace: dict, scheme: str | None = None, temperature: float | None = None,
                      annealing: str | None = None) -> dict:
    """A particle filter's resampling rounds redrawn from the recorded rewards under another rule
    (`scheme`, weight `temperature`, `annealing`; each None: the run's own, as its "setup" decision
    recorded it), with the run's own random stream (run seed, problem id), until a round's draw of
    unfinished particles differs from the recorded one. With the run's own rule every round is drawn
    again exactly as it was: {"rounds": [...], "diverged_at": None}."""
    setup = next((d for d in trace.get("decisions", []) if d["kind"] == "setup" and "rng_key" in d), None)
    if setup is None or trace.get("run_seed") is None:
        raise ValueError(f"{trace.get('problem')}: no particle filtering setup or run seed in the trace: "
                         "not a particle filtering trace (or one recorded before they were kept)")
    scheme = setup["resampling"] if scheme is None else scheme
    if scheme not in SCHEMES:
        raise ValueError(f"scheme={scheme!r}; choose one of: {', '.join(SCHEMES)}")
    temperature = setup["weight_temperature"] if temperature is None else temperature
    annealing = setup["annealing"] if annealing is None else annealing
    rng = np.random.default_rng(derive_seed(trace["run_seed"], trace["problem"], setup["rng_key"]))
    rounds, diverged = [], None
    for decision in trace["decisions"]:
        if decision["kind"] not in ("resampled", "kept"):
            continue
        nodes, rewards, finished = decision["nodes"], decision["rewards"], decision["finished"]
        weights = softmax_logit_weights(rewards, temperature, setup["reward_clip"])
        anneal = annealing_temperature(weights, decision["round"], setup["max_steps"], annealing,
                                       setup["anneal_ess_threshold"], setup["anneal_early_phase"],
                                       setup["anneal_value_max"])
        if anneal != 1.0:
            weights = softmax_logit_weights(rewards, temperature * anneal, setup["reward_clip"])
        threshold = setup["ess_threshold"]
        if threshold is not None and not effective_sample_size(weights) < threshold * len(nodes):
            drawn = list(nodes)  # ESS high enough: no draw (as the run)
        else:
            pool = [i for i, done in enumerate(finished) if setup["resample_finished"] or not done]
            drawn = list(nodes)
            if pool:
                w = weights[pool]
                picks, members = iter(pool[j] for j in resample(w / w.sum(), len(pool), scheme, rng)), set(pool)
                drawn = [nodes[next(picks)] if i in members else nodes[i] for i in range(len(nodes))]
        recorded = decision.get("drawn", nodes)
        done = {node for node, end in zip(nodes, finished) if end}
        # a finished particle is not extended again: only the unfinished ones drawn must match (copies count)
        same = Counter(d for d in drawn if d not in done) == Counter(r for r in recorded if r not in done)
        rounds.append({"round": decision["round"], "weights": weights.tolist(), "anneal": anneal, "drawn": drawn,
                       "recorded": recorded, "same": same})
        if not same:
            diverged = decision["round"]
            break
    return {"problem": trace["problem"], "scheme": scheme, "temperature": temperature, "annealing": annealing,
            "rounds": rounds, "diverged_at": diverged}
