"""Scaling curves from one large-N run: maj@k, best-of-k (by score) and pass@k for k = 1, 2, 4, ... N,
computed by subsampling each problem's N samples instead of regenerating, each with a 95% bootstrap
interval over problems.

pass@k uses the unbiased estimator of Chen et al. 2021: 1 - C(n - c, k) / C(n, k). maj@k and
best-of-k are expectations over random k-subsets (estimated with `subsets` draws per problem);
within a subset, vote ties go to the sample drawn first (at k = N, the first sampled, as in the run).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Sequence

from ttscale.analysis.metrics import proportion_ci
from ttscale.types import Candidate, Result


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if c <= 0:
        return 0.0  # also a problem with no candidates at all (n = 0)
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _majority_correct(subset: Sequence[Candidate]) -> float:
    votes = Counter(c.group for c in subset if c.group is not None)
    if not votes:
        return 0.0
    top = max(votes.values())
    winner = next(c for c in subset if c.group is not None and votes[c.group] == top)
    return float(bool(winner.correct))


def _best_correct(subset: Sequence[Candidate]) -> float:
    scored = [c for c in subset if c.score is not None]
    if not scored:
        return 0.0
    return float(bool(max(scored, key=lambda c: c.score).correct))


def ks_for(n: int) -> list[int]:
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def scaling_curve(results: Sequence[Result], subsets: int = 200, seed: int = 0) -> list[dict]:
    """One row per k: maj@k, best-of-k (when samples are scored) and pass@k, each with its 95% CI.

    A graded problem without candidates (its search errored or finished no solution) counts 0 at every
    k; `no_candidates` in each row says how many there were."""
    graded = [r for r in results if r.correct is not None]
    sized = [r for r in graded if r.candidates]
    if not sized:
        return []
    n = min(len(r.candidates) for r in sized)
    rng = random.Random(seed)
    has_scores = all(c.score is not None for r in sized for c in r.candidates)
    rows = []
    for k in ks_for(n):
        maj, best, cover = [], [], []
        for r in graded:
            if not r.candidates:
                maj.append(0.0)
                best.append(0.0)
                cover.append(0.0)
                continue
            # all n samples: in their sampled order, so maj@n is the run's own majority vote
            draws = [list(r.candidates)] if k == len(r.candidates) else [rng.sample(r.candidates, k) for _ in range(subsets)]
            maj.append(sum(_majority_correct(d) for d in draws) / len(draws))
            if has_scores:
                best.append(sum(_best_correct(d) for d in draws) / len(draws))
            cover.append(pass_at_k(len(r.candidates), sum(bool(c.correct) for c in r.candidates), k))
        row = {"k": k, "problems": len(graded), "no_candidates": len(graded) - len(sized), "maj_at_k": sum(maj) / len(maj), "maj_at_k_ci95": proportion_ci(maj),
               "pass_at_k": sum(cover) / len(cover), "pass_at_k_ci95": proportion_ci(cover)}
        if has_scores:
            row.update({"best_of_k": sum(best) / len(best), "best_of_k_ci95": proportion_ci(best)})
        rows.append(row)
    return rows
