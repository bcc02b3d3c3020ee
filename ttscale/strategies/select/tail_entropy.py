"""Tail-entropy best-of-N (its_hub's ConfidenceSelection): the sample whose last tokens the model was
surest of.

Per token, the entropy of the top-k probabilities as returned (not renormalised), in nats
(ttscale.confidence: the `topk_entropy` series). With N >= 16 samples, those whose length lies
outside the [trim_pct, 1 - trim_pct] percentiles are left out. The tail window adapts to the
samples: clamp(sqrt(mean length) / mean entropy, tail_min, tail_max) tokens, the mean entropy taken
over each sample's last 2048 tokens. Each sample's score is the median (agg="mean": the mean) entropy
of its last `tail` tokens; the lowest wins (ties: the earlier sample). A sample that generated no
token is left out. its_hub picks whatever sample wins; require_answer=true passes over samples
without an answer (ttscale's best-of-N default), unless no answered sample is left after trimming. A
trim that would leave no sample at all (its_hub then fails) keeps them all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ttscale.strategies.select.base import MissingStatistic, Selection
from ttscale.types import Trajectory

SERIES = "topk_entropy"
AGGREGATIONS = ("median", "mean")
TRIM_FROM = 16  # fewer samples than this: no length outliers are trimmed (its_hub's)
MEAN_WINDOW = 2048  # the tokens each sample's mean entropy is taken over, for the window's size (its_hub's)


@dataclass
class TailEntropy:
    tail_min: int = 64
    tail_max: int = 2048
    agg: str = field(default="median", metadata={"config": "tail_agg"})
    trim_pct: float = field(default=0.05, metadata={"config": "length_trim"})
    require_answer: bool = field(default=False, metadata={"config": "tail_require_answer"})  # its_hub: any may win
    needs_scores = False
    needs_stats = True
    needs_series = True  # the per-token entropies of every final sample
    needs_probability_scores = False

    def __post_init__(self) -> None:
        if self.agg not in AGGREGATIONS:
            raise ValueError(f"agg={self.agg!r}; choose one of: {', '.join(AGGREGATIONS)}")
        if not (isinstance(self.tail_min, int) and isinstance(self.tail_max, int) and 1 <= self.tail_min <= self.tail_max):
            raise ValueError(f"tail_min={self.tail_min!r}, tail_max={self.tail_max!r}: integers, 1 <= tail_min <= tail_max")
        if not 0 <= self.trim_pct < 0.5:
            raise ValueError(f"trim_pct={self.trim_pct!r} must be in [0, 0.5)")

    def __call__(self, trajectories: Sequence[Trajectory], groups: Sequence[int | None]) -> Selection:
        entropies = []
        for t in trajectories:
            if t.series is None or SERIES not in t.series:
                raise MissingStatistic("select=tail_entropy needs every sample's per-token entropies (top-k "
                                       "logprobs, kept per token), and a sample has none: the search or backend did "
                                       "not return them")
            entropies.append(t.series[SERIES])
        usable = [i for i, e in enumerate(entropies) if e]
        if not usable:
            return Selection(None, {"reason": "no sample generated a token"})
        included = _trim_lengths(usable, [len(entropies[i]) for i in usable], self.trim_pct)
        tail = self.tail_window([entropies[i] for i in included])
        fn = np.median if self.agg == "median" else np.mean
        scores = [float(fn(entropies[i][-tail:])) if i in included else math.inf for i in range(len(entropies))]
        pool = [i for i in included if groups[i] is not None] if self.require_answer else []
        best = min(pool or included, key=lambda i: (scores[i], i))
        info = {"tail_window": tail, "tail_entropy": [None if math.isinf(s) else round(s, 6) for s in scores],
                "left_out": sorted(set(range(len(scores))) - set(included))}
        return Selection(best, info)

    def tail_window(self, entropies: Sequence[Sequence[float]]) -> int:
        """clamp(sqrt(mean length) / mean entropy, tail_min, tail_max), the mean entropy at least 1e-6."""
        mean_len = float(np.mean([len(e) for e in entropies]))
        mean_entropy = max(float(np.mean([np.mean(e[-MEAN_WINDOW:]) for e in entropies])), 1e-6)
        return int(np.clip(math.sqrt(mean_len) / mean_entropy, self.tail_min, self.tail_max))


def _trim_lengths(indices: list[int], lengths: list[int], trim_pct: float) -> list[int]:
    """The samples whose length lies within the [trim_pct, 1 - trim_pct] percentiles (numpy's linear
    interpolation); all of them when there are fewer than 16, or when none would be left."""
    if len(lengths) < TRIM_FROM:
        return list(indices)
    lo, hi = float(np.percentile(lengths, trim_pct * 100)), float(np.percentile(lengths, (1 - trim_pct) * 100))
    return [i for i, n in zip(indices, lengths) if lo <= n <= hi] or list(indices)


METHODS = {"tail_entropy": TailEntropy}  # strategy.select=tail_entropy
