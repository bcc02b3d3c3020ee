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


def g_pass_at_k(n: int, c: int, k: int, tau: float) -> float:
    """G-Pass@k_tau (Liu et al. 2024, "Are Your LLMs Capable of Stable Reasoning?"): the probability
    that at least ceil(tau * k) of k samples drawn without replacement from n (c correct) are correct.
    tau = 1 asks every one of the k to be right; a small tau approaches pass@k."""
    from scipy.stats import hypergeom

    if k > n or k < 1:
        raise ValueError(f"G-Pass@k needs 1 <= k <= n (k={k}, n={n})")
    need = max(1, math.ceil(tau * k - 1e-9))
    return float(hypergeom.sf(need - 1, n, c, k))


def mg_pass_at_k(n: int, c: int, k: int) -> float:
    """mG-Pass@k: 2 x the area under G-Pass@k_tau for tau in [0.5, 1], as the authors' sum:
    (2 / k) * sum of G-Pass@k_(i/k) for i = ceil(k / 2) + 1 .. k."""
    low = math.ceil(0.5 * k) + 1
    return 2.0 / k * sum(g_pass_at_k(n, c, k, i / k) for i in range(low, k + 1))


G_PASS_THRESHOLDS = (0.25, 0.5, 0.75, 1.0)  # lighteval's and the authors' thresholds


def ks_for(n: int) -> list[int]:
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return ks + [n]


def graded_results(results: Sequence[Result]) -> list[Result]:
    """The problems a run's accuracy is over: graded (a verdict, True or False) and without error. An
    errored problem is not a wrong answer: it is counted apart (older runs graded errored problems as
    wrong; they are left out here too)."""
    return [r for r in results if r.correct is not None and r.error is None]


def scaling_curve(results: Sequence[Result], subsets: int = 200, seed: int = 0) -> list[dict]:
    """One row per k: maj@k, best-of-k (when samples are scored) and pass@k, each with its 95% CI.

    A graded problem without candidates (its search finished no solution) counts 0 at every k;
    `no_candidates` in each row says how many there were."""
    graded = graded_results(results)
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


def sample_accuracy(graded: Sequence[Result]) -> dict | None:
    """pass@1[avg-of-n] as NeMo-Skills reports it: the mean over problems of the share of a problem's
    n samples that are correct, and its standard deviation over the n sample positions (the accuracy
    of "the i-th sample of every problem", i = 1..n; sample std, ddof = 1). n: the fewest candidates
    of a problem that has any; a problem without candidates counts 0."""
    sized = [r for r in graded if r.candidates]
    if not sized:
        return None
    n = min(len(r.candidates) for r in sized)
    per_position = [sum(bool(r.candidates[i].correct) if r.candidates else False for r in graded) / len(graded)
                    for i in range(n)]
    mean = sum(sum(bool(c.correct) for c in r.candidates[:n]) / n if r.candidates else 0.0 for r in graded) / len(graded)
    std = (sum((a - mean) ** 2 for a in per_position) / (n - 1)) ** 0.5 if n > 1 else None
    return {"n": n, "mean": mean, "std": std}


def field_metrics(graded: Sequence[Result], subsets: int = 200, seed: int = 0) -> dict:
    """What peers report side by side (NeMo-Skills, lighteval, open-r1), over graded problems:
    pass@1[avg-of-n] with its std over samples, maj@k and pass@k for k = 1, 2, 4, ... n (as the
    scaling curve computes them, same draws), G-Pass@k at lighteval's thresholds and mG-Pass@k, and the
    no-answer rate (graded problems whose chosen answer is none)."""
    out: dict = {"no_answer_rate": (sum(r.answer is None for r in graded) / len(graded)) if graded else None}
    avg = sample_accuracy(graded)
    if avg is None:
        return out
    out["pass_at_1_avg_of_n"] = avg["mean"]
    out["pass_at_1_avg_of_n_std"] = avg["std"]
    rows = scaling_curve(graded, subsets=subsets, seed=seed)
    out["maj_at_k"] = {row["k"]: row["maj_at_k"] for row in rows}
    n = avg["n"]
    counts = [(min(len(r.candidates), n), sum(bool(c.correct) for c in r.candidates[:n])) for r in graded]
    g_pass, mg_pass = {}, {}
    for k in ks_for(n):
        g_pass[k] = {str(tau): sum(g_pass_at_k(m, c, k, tau) if m >= k else 0.0 for m, c in counts) / len(counts)
                     for tau in G_PASS_THRESHOLDS}
        mg_pass[k] = sum(mg_pass_at_k(m, c, k) if m >= k else 0.0 for m, c in counts) / len(counts)
    out["g_pass_at_k"] = g_pass
    out["mg_pass_at_k"] = mg_pass
    return out
