"""Tiny random checkpoints of every PRM format, for tests and benchmarks without a download.

Each has its real model's architecture class and weight names — a Qwen2 base with a `score.*`
two-class head saved as Qwen2ForProcessRewardModel (which vLLM pools natively), a Qwen2 base with a
`v_head.summary.*` value head (Skywork), Mistral / Llama causal LMs (Math-Shepherd, RLHFlow) and a
Qwen2 token classifier (TRL) — with a few small layers and random weights. The tokenizer is any
local one (SmolLM2's here), with the formats' step tags added as single tokens.
"""

from __future__ import annotations

from pathlib import Path

TAGS = ["<extra_0>", "ки"]
# head_dim 32: a size vLLM's CPU attention kernels support
SIZES = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, max_position_embeddings=2048)


def tiny_tokenizer(source: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.add_special_tokens({"additional_special_tokens": TAGS})
    return tokenizer


def build_tiny_prm(fmt: str, tokenizer_source: str, out: str | Path, seed: int = 0, **sizes) -> Path:
    """Write a tiny checkpoint of `fmt` (a ttscale.verifiers.prm format) into `out`; returns it."""
    import torch
    from safetensors.torch import save_file
    from transformers import (LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM, Qwen2Config,
                              Qwen2ForTokenClassification, Qwen2Model)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_tokenizer(tokenizer_source)
    dims = {**SIZES, **sizes, "vocab_size": len(tokenizer)}
    torch.manual_seed(seed)
    if fmt in ("qwen_math_prm", "value_head"):
        architecture = "Qwen2ForProcessRewardModel" if fmt == "qwen_math_prm" else "Qwen2ForPrmModel"
        config = Qwen2Config(architectures=[architecture], num_labels=2, **dims)
        base = Qwen2Model(config)
        hidden = config.hidden_size
        if fmt == "qwen_math_prm":
            head, prefix = torch.nn.Sequential(torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
                                               torch.nn.Linear(hidden, 2)), "score."
        else:
            head, prefix = torch.nn.Linear(hidden, 1), "v_head.summary."
        state = {f"model.{k}": v.contiguous() for k, v in base.state_dict().items()}
        state.update({f"{prefix}{k}": v.contiguous() for k, v in head.state_dict().items()})
        config.save_pretrained(out)
        save_file(state, str(out / "model.safetensors"))
    elif fmt == "math_shepherd":
        MistralForCausalLM(MistralConfig(**dims)).save_pretrained(out)
    elif fmt == "rlhflow":
        LlamaForCausalLM(LlamaConfig(**dims)).save_pretrained(out)
    elif fmt == "token_classification":
        Qwen2ForTokenClassification(Qwen2Config(num_labels=2, **dims)).save_pretrained(out)
    else:
        raise ValueError(f"format={fmt!r}")
    tokenizer.save_pretrained(out)
    return out
