"""What `strategy.n` counts for each search, and which n values it accepts.

n=8 particles, n=8 beams and n=8 samples are not the same compute: leaderboards label n with its
meaning, and every result records the same measures (generated tokens, fresh prompt tokens, verifier
tokens and calls, FLOPs), so methods can be compared at a matched budget.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# what strategy.n counts, per search: leaderboards label n with it, since n=8 particles and n=8 samples
# are not the same compute (every result also records the same measures: tokens, verifier calls, FLOPs)
BUDGET_KNOBS = {
    "parallel": "samples", "adaptive": "samples at most", "sequential": "samples (chains x rounds)",
    "particle_filtering": "particles", "particle_gibbs": "particles over all sweeps", "beam_search": "beams",
    "dvts": "expansions per round", "a_star": "expansions", "mcts": "expansions", "block_search": "blocks per round",
    "rebase": "finished solutions", "deepconf_online": "traces at most (warm-up included)",
    "set_cover_pruning": "hypotheses started", "eager": "sequences at most (branches included)",
    "power_sampling": "MCMC chains", "fractured_sampling": "trajectories (x depths x answers per depth)",
    "phi_decoding": "beams (x rollouts per beam)",
}
# the n values a search accepts: multiples of this strategy key's value
BUDGET_STEPS = {"beam_search": "beam_width", "dvts": "beam_width", "block_search": "beam_width",
                "particle_gibbs": "sweeps", "sequential": "chains"}


def budget_knob(strategy_cfg: Mapping[str, Any]) -> str:
    return BUDGET_KNOBS.get(strategy_cfg.get("search", ""), "n")


def budget_step(strategy_cfg: Mapping[str, Any]) -> int:
    key = BUDGET_STEPS.get(strategy_cfg.get("search", ""))
    return int(strategy_cfg[key]) if key else 1


