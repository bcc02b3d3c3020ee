"""Top-p (nucleus) filtering without sorting the vocabulary: a vLLM logits processor for the CPU engine.

vLLM's CPU sampler applies top-p by sorting every row of the logits. At a batch of 128 sequences that
sort takes about 0.23 s per engine step with SmolLM2's 49k-token vocabulary and 0.8 s with Qwen's
152k on two cores, as long as or longer than the small model's own forward pass (BENCHMARKS.md):
it is why eight times the sequences gave about half the tokens per second.

This processor keeps the same tokens as vLLM's rule — a token is removed when the tokens at most as
probable as it hold at most 1 - p of the probability, i.e. kept when the tokens ranked above it hold
less than p; the most probable token always stays — but finds them among each row's `candidates`
most probable tokens (`torch.topk`), with the probabilities normalised over the whole vocabulary
(`logsumexp`). A row whose candidates hold less than p of the probability is sorted in full instead.
The kept set is vLLM's up to float rounding of the cumulative sums at the boundary, and up to which
members of a group of equal logits straddling it are kept (vLLM's own sort is not stable there
either; with float32 logits such ties are rare).

`VLLMBackend` (backend.fast_top_p) registers it with the engine (`logits_processors`) and sends a
request's top_p as `extra_args["ttscale_top_p"]` with vLLM's own top_p at 1. The processor runs where
vLLM applies top-p: after temperature, among the processors that cannot change the argmax, before
sampling; so seeded samples and processed logprobs come out of the same filtered logits. A request
with top_k keeps vLLM's top-p (vLLM applies top-k first and renormalises).
"""

from __future__ import annotations

import torch
from vllm.v1.sample.logits_processor import BatchUpdate, LogitsProcessor, MoveDirectionality

from ttscale.backends.base import TOP_P_KEY as KEY

CANDIDATES = 256


def top_p_filter(logits: torch.Tensor, p: torch.Tensor, candidates: int = CANDIDATES) -> torch.Tensor:
    """`logits` [rows, vocab] with every token outside each row's top-p set at -inf (in place); p [rows]."""
    k = min(candidates, logits.shape[-1])
    values, index = logits.topk(k, dim=-1)  # most probable first
    probs = (values - torch.logsumexp(logits, dim=-1, keepdim=True)).exp()
    above = probs.cumsum(-1) - probs  # the probability of the tokens ranked above each candidate
    keep = above < p.unsqueeze(-1)
    inside = ~keep[:, -1] if k < logits.shape[-1] else torch.ones_like(keep[:, -1])
    kept = values.masked_fill(~keep, float("-inf"))
    wide = (~inside).nonzero().flatten()
    full = _sorted_filter(logits[wide], p[wide]) if len(wide) else None
    logits.fill_(float("-inf"))
    logits.scatter_(1, index, kept)
    if full is not None:
        logits[wide] = full
    return logits


def _sorted_filter(logits: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The rows whose top candidates hold less than p, by a full sort."""
    values, index = logits.sort(dim=-1, descending=True)
    probs = values.softmax(-1)
    above = probs.cumsum(-1) - probs
    out = torch.full_like(logits, float("-inf"))
    return out.scatter_(1, index, values.masked_fill(above >= p.unsqueeze(-1), float("-inf")))


class TopP(LogitsProcessor):
    """vLLM V1 logits processor: top-p for the rows whose request carries extra_args[KEY] < 1."""

    def __init__(self, vllm_config, device: torch.device, is_pin_memory: bool) -> None:
        self.top_p: dict[int, float] = {}  # batch row -> p

    @classmethod
    def validate_params(cls, sampling_params) -> None:
        p = (sampling_params.extra_args or {}).get(KEY)
        if p is not None and not (isinstance(p, (int, float)) and 0.0 < p <= 1.0):
            raise ValueError(f"extra_args[{KEY!r}]={p!r} must be a number in (0, 1]")
        if p is not None and p < 1.0 and sampling_params.top_k not in (0, -1, None):
            raise ValueError(f"extra_args[{KEY!r}] with top_k: send top_p to vLLM itself (top-k applies first)")

    def is_argmax_invariant(self) -> bool:
        return True  # the most probable token is always kept

    def update_state(self, batch_update: BatchUpdate | None) -> None:
        if not batch_update:
            return
        for row in batch_update.removed:
            self.top_p.pop(row, None)
        for row, params, _, _ in batch_update.added:
            p = (getattr(params, "extra_args", None) or {}).get(KEY)
            if p is not None and p < 1.0:
                self.top_p[row] = float(p)
            else:
                self.top_p.pop(row, None)
        for a, b, direction in batch_update.moved:
            pa, pb = self.top_p.pop(a, None), self.top_p.pop(b, None)
            if pa is not None:
                self.top_p[b] = pa
            if direction == MoveDirectionality.SWAP and pb is not None:
                self.top_p[a] = pb

    def apply(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.top_p:
            return logits
        rows = sorted(self.top_p)
        p = torch.tensor([self.top_p[r] for r in rows], dtype=logits.dtype, device=logits.device)
        if len(rows) == logits.shape[0] and rows[-1] == len(rows) - 1:
            return top_p_filter(logits, p)
        index = torch.tensor(rows, device=logits.device)
        logits[index] = top_p_filter(logits[index], p)
        return logits
