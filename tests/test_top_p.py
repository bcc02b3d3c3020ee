"""backends/top_p.py: the same kept tokens as vLLM's sort-based top-p, and the batch bookkeeping."""

import pytest
import torch

from ttscale.backends.top_p import KEY, TopP, top_p_filter


def _vllm(logits: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    from vllm.v1.sample.ops.topk_topp_sampler import apply_top_k_top_p_pytorch

    return apply_top_k_top_p_pytorch(logits.clone(), None, p, allow_cpu_sync=True)


@pytest.mark.parametrize("candidates", [8, 64, 256])
def test_the_kept_tokens_are_vllms(candidates):
    gen = torch.Generator().manual_seed(0)
    # peaked rows (the top-p set lies in a few candidates) and flat ones (it does not: full sort)
    scale = torch.tensor([0.3, 1.0, 3.0, 8.0]).repeat(16).unsqueeze(-1)
    logits = torch.randn(64, 5000, generator=gen) * scale
    p = torch.tensor([0.5, 0.9, 0.95, 0.99]).repeat_interleave(16)
    ours = top_p_filter(logits.clone(), p, candidates)
    theirs = _vllm(logits, p)
    assert torch.equal(torch.isfinite(ours), torch.isfinite(theirs))
    kept = torch.isfinite(ours)
    assert torch.equal(ours[kept], logits[kept])  # kept logits are untouched
    assert kept.sum(-1).min() >= 1


def test_a_row_of_minus_infinity_and_p_of_one_half_with_ties():
    logits = torch.tensor([[2.0, 2.0, 0.0, float("-inf")], [5.0, 1.0, 1.0, 1.0]])
    p = torch.tensor([0.5, 0.5])
    out = top_p_filter(logits.clone(), p, candidates=2)
    assert torch.isfinite(out).sum(-1).tolist() == [2, 1]  # the first of the tied pair holds 0.47 < 0.5
    assert torch.equal(torch.isfinite(out), torch.isfinite(_vllm(logits, p))) and out[1, 0] == 5.0


class _Params:
    def __init__(self, p=None, top_k=-1):
        self.extra_args = None if p is None else {KEY: p}
        self.top_k = top_k


def test_the_processor_follows_rows_as_vllm_adds_removes_and_moves_them():
    from vllm.v1.sample.logits_processor import BatchUpdate, MoveDirectionality

    proc = TopP(None, torch.device("cpu"), False)
    proc.update_state(BatchUpdate(3, removed=[], added=[(0, _Params(0.5), [], []), (1, _Params(), [], []),
                                                       (2, _Params(0.9), [], [])], moved=[]))
    assert proc.top_p == {0: 0.5, 2: 0.9}
    proc.update_state(BatchUpdate(3, removed=[], added=[], moved=[(0, 1, MoveDirectionality.SWAP)]))
    assert proc.top_p == {1: 0.5, 2: 0.9}
    proc.update_state(BatchUpdate(2, removed=[1], added=[], moved=[(2, 1, MoveDirectionality.UNIDIRECTIONAL)]))
    assert proc.top_p == {1: 0.9}
    logits = torch.tensor([[3.0, 0.0, 0.0], [3.0, 2.9, 0.0]])
    out = proc.apply(logits.clone())
    assert torch.equal(out[0], logits[0])  # row 0 asked for no top-p
    assert torch.isfinite(out[1]).tolist() == [True, True, False]
    assert proc.is_argmax_invariant()
    TopP.validate_params(_Params(0.9))
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        TopP.validate_params(_Params(1.5))
    with pytest.raises(ValueError, match="top_k"):
        TopP.validate_params(_Params(0.9, top_k=20))
