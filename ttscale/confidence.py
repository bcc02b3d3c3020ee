"""Per-trajectory token statistics from top-k logprobs, computed once; only the summary is kept.

Definitions (per generated token t, over its top-k logprobs log p_t1..log p_tk):
- entropy H_t = -sum_j q_tj log2 q_tj, with q the top-k probabilities renormalised to sum to 1
  (The Sequential Edge, Sharma et al. 2025); `mean_entropy` is the mean over tokens.
- token confidence C_t = -(1/k) sum_j log p_tj (DeepConf, Fu et al. 2025); `mean_confidence`.
- group confidence: the mean of C_t over a sliding window of `window` tokens (one group of all tokens
  when the text is shorter); `lowest_group_confidence`, `bottom_group_confidence` (mean of the lowest
  `bottom_frac` of groups; DeepConf's bottom-10%), `tail_confidence` (mean C_t of the last `tail` tokens).
- `sum_logprob` of the sampled tokens, `mean_logprob`, and `perplexity` = exp(-mean_logprob).
- token self-certainty KL(U || p) = -(1/k) sum_j log(k p_tj) = C_t - log k, with U uniform over the k
  tokens returned (Kang et al. 2025 take the whole vocabulary's logits, which an engine does not
  return); `self_certainty` is its mean over tokens, >= 0 (Jensen), larger = surer.
- the top-k entropy in nats as returned, not renormalised: -sum_j p_tj ln(p_tj + 1e-10) (its_hub's
  ConfidenceSelection); a per-token series only (`topk_entropy`), for selections over a tail window,
  computed only where the series is kept (a third of token_series' time otherwise).

The logprobs are whatever the backend returns: vLLM's are raw (the model's distribution before
temperature and top-p), which is what DeepConf's and the Sequential Edge's vLLM runs used.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

LN2 = math.log(2.0)


@dataclass(frozen=True)
class StatsSpec:
    window: int = 2048
    tail: int = 2048
    bottom_frac: float = 0.1


def token_entropy_bits(top_logprobs: Sequence[float]) -> float:
    """Entropy (bits) of the renormalised top-k distribution."""
    peak = max(top_logprobs)
    weights = [math.exp(lp - peak) for lp in top_logprobs]
    total = sum(weights)
    return -sum((w / total) * (math.log(w / total) / LN2) for w in weights if w > 0)


def token_confidence(top_logprobs: Sequence[float]) -> float:
    """DeepConf's token confidence: the negative mean of the top-k logprobs."""
    return -sum(top_logprobs) / len(top_logprobs)


def token_self_certainty(top_logprobs: Sequence[float]) -> float:
    """KL(U || p) over the k tokens returned: DeepConf's token confidence minus log k."""
    return token_confidence(top_logprobs) - math.log(len(top_logprobs))


def token_topk_entropy(top_logprobs: Sequence[float]) -> float:
    """Entropy (nats) of the top-k probabilities as returned (not renormalised), its_hub's form."""
    return -sum(math.exp(lp) * math.log(math.exp(lp) + 1e-10) for lp in top_logprobs)


SERIES_KEYS = ("sampled", "confidence", "entropy", "certainty", "topk_entropy")


def _total(values: Sequence[float]) -> float:
    """A plain left-to-right sum (Python 3.12's sum() of floats is compensated; the running
    statistics add one value at a time, and the two must agree exactly)."""
    total = 0.0
    for v in values:
        total += v
    return total


def token_series(sampled: Sequence[float], tops: Sequence[Sequence[float]],
                 kept: bool = True) -> dict[str, list[float]]:
    """Per-token values the statistics are made of: the sampled logprob, the token confidence, the
    entropy, the self-certainty, and (kept: a series kept beyond its summary) the top-k entropy in nats
    (SERIES_KEYS). Series of consecutive pieces (the steps of a partial solution) concatenate into the
    series of the whole, so statistics over several steps are exact."""
    series = {"sampled": [float(x) for x in sampled], "confidence": [token_confidence(top) for top in tops],
              "entropy": [token_entropy_bits(top) for top in tops],
              "certainty": [token_self_certainty(top) for top in tops]}
    if kept:
        series["topk_entropy"] = [token_topk_entropy(top) for top in tops]
    return series


def concat_series(parts: Sequence[dict[str, list[float]]]) -> dict[str, list[float]]:
    return {key: [x for part in parts for x in part[key]] for key in SERIES_KEYS}


def sequence_stats(sampled: Sequence[float], tops: Sequence[Sequence[float]], spec: StatsSpec = StatsSpec()) -> dict[str, float]:
    """The summary statistics of one completion. `sampled[t]` is the sampled token's logprob and
    `tops[t]` the top-k logprobs at step t (k >= 1)."""
    return series_stats(token_series(sampled, tops, kept=False), spec)


def series_stats(series: dict[str, list[float]], spec: StatsSpec = StatsSpec()) -> dict[str, float]:
    """The summary statistics of a token series (see token_series)."""
    sampled, confidences, entropies = series["sampled"], series["confidence"], series["entropy"]
    n = len(sampled)
    if n == 0:
        return {"tokens": 0}
    window = max(1, min(spec.window, n))
    groups = []
    running = _total(confidences[:window])
    groups.append(running / window)
    for t in range(window, n):
        running += confidences[t] - confidences[t - window]
        groups.append(running / window)
    groups.sort()
    bottom = groups[: max(1, int(len(groups) * spec.bottom_frac))]
    tail = confidences[-max(1, min(spec.tail, n)):]
    total = _total(sampled)
    return {
        "tokens": n,
        "mean_entropy": _total(entropies) / n,
        "mean_confidence": _total(confidences) / n,
        "self_certainty": _total(series["certainty"]) / n,
        "lowest_group_confidence": groups[0],
        "bottom_group_confidence": _total(bottom) / len(bottom),
        "tail_confidence": _total(tail) / len(tail),
        "sum_logprob": total,
        "mean_logprob": total / n,
        "perplexity": math.exp(-total / n),
    }


class RunningStats:
    """The statistics above, updated token by token as a sample streams in; `stats()` equals
    `series_stats` on the same tokens (the same sums in the same order).

    While the sample runs: `group_confidence` is the mean token confidence of the newest full window
    (None until `window` tokens have arrived), `lowest_group_confidence` the lowest such window so
    far, `last_entropy` the newest token's entropy (bits).
    """

    def __init__(self, spec: StatsSpec = StatsSpec(), keep_series: bool = False):
        self.spec = spec
        self.keep_series = keep_series
        self.tokens = 0
        self.sum_sampled = 0.0
        self.sum_confidence = 0.0
        self.sum_entropy = 0.0
        self.sum_certainty = 0.0
        self.last_entropy: float | None = None
        self._window: deque[float] = deque()
        self._running = 0.0  # the sum of the window's confidences
        self._groups: list[float] = []  # every full window's mean, in order
        self._lowest: float | None = None
        self._tail: deque[float] = deque(maxlen=max(1, spec.tail))
        self._sampled: list[float] = []
        self._confidence: list[float] = []
        self._entropy: list[float] = []
        self._certainty: list[float] = []
        self._topk_entropy: list[float] = []

    def update(self, sampled: Sequence[float], tops: Sequence[Sequence[float]]) -> None:
        """Add tokens: their sampled logprobs and their top-k logprobs (k >= 1)."""
        window = max(1, self.spec.window)
        for lp, top in zip(sampled, tops, strict=True):
            c, h, sc = token_confidence(top), token_entropy_bits(top), token_self_certainty(top)
            self.tokens += 1
            self.sum_sampled += float(lp)
            self.sum_confidence += c
            self.sum_entropy += h
            self.sum_certainty += sc
            self.last_entropy = h
            self._tail.append(c)
            if len(self._window) == window:
                self._running += c - self._window.popleft()
            else:
                self._running += c
            self._window.append(c)
            if len(self._window) == window:
                group = self._running / window
                self._groups.append(group)
                if self._lowest is None or group < self._lowest:
                    self._lowest = group
            if self.keep_series:
                self._sampled.append(float(lp))
                self._confidence.append(c)
                self._entropy.append(h)
                self._certainty.append(sc)
                self._topk_entropy.append(token_topk_entropy(top))

    @property
    def group_confidence(self) -> float | None:
        return self._groups[-1] if self._groups else None

    @property
    def lowest_group_confidence(self) -> float | None:
        return self._lowest

    @property
    def confidences(self) -> list[float]:
        """Every token's confidence so far (keep_series; the kept list itself, not a copy)."""
        return self._kept(self._confidence)

    @property
    def entropies(self) -> list[float]:
        """Every token's entropy (bits) so far (keep_series; the kept list itself, not a copy)."""
        return self._kept(self._entropy)

    def position(self, t: int) -> dict[str, float]:
        """Token t's values that belong to its position, not to the token drawn there (all but the
        sampled logprob; keep_series)."""
        self._kept(self._confidence)
        return {"confidence": self._confidence[t], "entropy": self._entropy[t], "certainty": self._certainty[t],
                "topk_entropy": self._topk_entropy[t]}

    def _kept(self, values: list[float]) -> list[float]:
        if not self.keep_series:
            raise ValueError("RunningStats(keep_series=True) keeps the per-token series")
        return values

    def series(self) -> dict[str, list[float]]:
        if not self.keep_series:
            raise ValueError("RunningStats(keep_series=True) keeps the per-token series")
        return {"sampled": list(self._sampled), "confidence": list(self._confidence), "entropy": list(self._entropy),
                "certainty": list(self._certainty), "topk_entropy": list(self._topk_entropy)}

    def stats(self) -> dict[str, float]:
        n = self.tokens
        if n == 0:
            return {"tokens": 0}
        groups = sorted(self._groups) if self._groups else [self._running / n]
        bottom = groups[: max(1, int(len(groups) * self.spec.bottom_frac))]
        tail = list(self._tail)[-max(1, min(self.spec.tail, n)):]
        return {
            "tokens": n,
            "mean_entropy": self.sum_entropy / n,
            "mean_confidence": self.sum_confidence / n,
            "self_certainty": self.sum_certainty / n,
            "lowest_group_confidence": groups[0],
            "bottom_group_confidence": _total(bottom) / len(bottom),
            "tail_confidence": _total(tail) / len(tail),
            "sum_logprob": self.sum_sampled,
            "mean_logprob": self.sum_sampled / n,
            "perplexity": math.exp(-self.sum_sampled / n),
        }
