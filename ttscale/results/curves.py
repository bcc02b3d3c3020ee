"""Scaling curves from one large-N run: maj@k, best-of-k (by score) and pass@k for k = 1, 2, 4, ... N,
computed by subsampling each problem's N samples instead of regenerating, each with a 95% bootstrap
interval over problems.

pass@k uses the unbiased estimator of Chen et al. 2021: 1 - C(n - c, k) / C(n, k). maj@k and
best-of-k are expectations over random k-subsets (estimated with `subsets` draws per problem);
within a subset, vote ties go to the sample drawn first (at k = N, the first sampled, as in the run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ttscale.results.metrics import proportion_ci
from ttscale.types import Result


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n (c correct) is correct."""
    if c <= 0:
        return 0.0  # also a problem with no candidates at all (n = 0)
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def g_pass_at_k(n: int, c: int, k: int, tau: float) -> float:
    """G-Pass@k_tau (Liu et al. 2024, "Are Your LLMs Capable of Stable Reasoning?"): the probability
    that at least ceil(tau * k) of k samples drawn without replacement from n (c correct) are correct.
    tau = 1 asks every one of the k to be right; a small tau approaches pass@k."""
    if k > n or k < 1:
        raise ValueError(f"G-Pass@k needs 1 <= k <= n (k={k}, n={n})")
    need = max(1, math.ceil(tau * k - 1e-9))
    # the hypergeometric tail, in exact integers
    return sum(math.comb(c, j) * math.comb(n - c, k - j) for j in range(need, min(c, k) + 1)) / math.comb(n, k)


def mg_pass_at_k(n: int, c: int, k: int) -> float:
    """mG-Pass@k: 2 x the area under G-Pass@k_tau for tau in [0.5, 1], as the authors' sum:
    (2 / k) * sum of G-Pass@k_(i/k) for i = ceil(k / 2) + 1 .. k."""
    low = math.ceil(0.5 * k) + 1
    return 2.0 / k * sum(g_pass_at_k(n, c, k, i / k) for i in range(low, k + 1))


G_PASS_THRESHOLDS = (0.25, 0.5, 0.75, 1.0)  # the authors' (open-compass/GPassK) and HF evaluate's thresholds


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


def _subset_outcomes(result: Result, k: int, subsets: int, rng) -> tuple[float, float]:
    """maj@k and best-of-k of one problem: the mean over `subsets` random k-subsets of its samples (all
    n in sampled order at k = n), vectorised. Vote ties go to the sample drawn first; a subset with no
    answer, or no score, counts 0."""
    import numpy as np

    n = len(result.candidates)
    groups = np.array([-1 if c.group is None else c.group for c in result.candidates])
    correct = np.array([bool(c.correct) for c in result.candidates])
    scores = np.array([-np.inf if c.score is None else c.score for c in result.candidates], dtype=float)
    draws = np.arange(n)[None, :] if k == n else np.argsort(rng.random((subsets, n)), axis=1)[:, :k]
    rows = np.arange(draws.shape[0])
    drawn = groups[draws]
    votes = ((drawn[:, :, None] == drawn[:, None, :]) & (drawn[:, :, None] >= 0)).sum(axis=2)
    top = votes.max(axis=1)
    winner = draws[rows, np.argmax(votes == top[:, None], axis=1)]
    maj = np.where(top > 0, correct[winner], False).mean()
    drawn_scores = scores[draws]
    best_pick = draws[rows, np.argmax(drawn_scores, axis=1)]
    best = np.where(np.isfinite(drawn_scores.max(axis=1)), correct[best_pick], False).mean()
    return float(maj), float(best)


def scaling_curve(results: Sequence[Result], subsets: int = 200, seed: int = 0, intervals: bool = True) -> list[dict]:
    """One row per k: maj@k, best-of-k (when samples are scored) and pass@k, each with its 95% CI
    (`intervals=False`: the values alone, as a run's summary keeps them).

    A graded problem without candidates (its search finished no solution) counts 0 at every k;
    `no_candidates` in each row says how many there were."""
    import numpy as np

    graded = graded_results(results)
    sized = [r for r in graded if r.candidates]
    if not sized:
        return []
    n = min(len(r.candidates) for r in sized)
    rng = np.random.default_rng(seed)
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
            m, b = _subset_outcomes(r, k, subsets, rng)
            maj.append(m)
            best.append(b)
            cover.append(pass_at_k(len(r.candidates), sum(bool(c.correct) for c in r.candidates), k))
        row = {"k": k, "n": n, "problems": len(graded), "no_candidates": len(graded) - len(sized),
               "maj_at_k": sum(maj) / len(maj), "pass_at_k": sum(cover) / len(cover)}
        if has_scores:
            row["best_of_k"] = sum(best) / len(best)
        if intervals:
            row.update({"maj_at_k_ci95": proportion_ci(maj), "pass_at_k_ci95": proportion_ci(cover)})
            if has_scores:
                row["best_of_k_ci95"] = proportion_ci(best)
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
    out["samples_per_problem"] = avg["n"]  # the n these measures use: the fewest samples of a problem
    out["pass_at_1_avg_of_n"] = avg["mean"]
    out["pass_at_1_avg_of_n_std"] = avg["std"]
    rows = scaling_curve(graded, subsets=subsets, seed=seed, intervals=False)
    out["maj_at_k"] = {row["k"]: row["maj_at_k"] for row in rows}
    n = avg["n"]
    counts = [(min(len(r.candidates), n), sum(bool(c.correct) for c in r.candidates[:n])) for r in graded]
    g_pass, mg_pass = {}, {}
    tally: dict[tuple[int, int], int] = {}
    for m, c in counts:  # problems with the same (n, c) have the same values: computed once
        tally[(m, c)] = tally.get((m, c), 0) + 1
    for k in ks_for(n):
        g_pass[k] = {str(tau): sum(w * g_pass_at_k(m, c, k, tau) for (m, c), w in tally.items() if m >= k) / len(counts)
                     for tau in G_PASS_THRESHOLDS}
        if k >= 2:  # mG-Pass@1 is an empty sum (always 0): not reported
            mg_pass[k] = sum(w * mg_pass_at_k(m, c, k) for (m, c), w in tally.items() if m >= k) / len(counts)
    out["g_pass_at_k"] = g_pass
    out["mg_pass_at_k"] = mg_pass
    return out
