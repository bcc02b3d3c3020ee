"""Turn a composed config into objects: model path, backend, problems, strategy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ttscale.data.loaders import DatasetSpec, load_problems
from ttscale.data.prompts import PromptTemplate
from ttscale.models.source import ModelSource, resolve_model
from ttscale.strategies.search.parallel import ParallelSampling
from ttscale.strategies.select.best_score import BestScore
from ttscale.strategies.select.majority import MajorityVote
from ttscale.strategies.strategy import Strategy
from ttscale.types import Problem, SamplingParams
from ttscale.verifiers.logprob import MeanLogprob


class ConfigError(ValueError):
    """A config value that is out of range or not among the choices; the message names both."""


SEARCHES = {"parallel": ParallelSampling}
SELECTORS = {"majority": MajorityVote, "best_score": BestScore}
VERIFIERS = {"mean_logprob": MeanLogprob}
BACKENDS = ("vllm",)


def _choice(key: str, value: Any, choices: Mapping | tuple) -> Any:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not a known choice; choose one of: {', '.join(sorted(choices))}")
    return choices[value] if isinstance(choices, Mapping) else value


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


def build_strategy(cfg: Mapping[str, Any]) -> Strategy:
    search_cls = _choice("strategy.search", cfg["search"], SEARCHES)
    select_cls = _choice("strategy.select", cfg["select"], SELECTORS)
    verifier = None
    if cfg.get("verifier") is not None:
        verifier = _choice("strategy.verifier", cfg["verifier"], VERIFIERS)()
    _positive("strategy.n", cfg["n"])
    _positive("strategy.temperature", cfg["temperature"], allow_zero=True)
    _positive("strategy.max_tokens", cfg["max_tokens"])
    if not 0 < cfg["top_p"] <= 1:
        raise ConfigError(f"strategy.top_p={cfg['top_p']!r} must be in (0, 1]")
    if select_cls.needs_scores and verifier is None:
        raise ConfigError(f"strategy.select={cfg['select']!r} needs scores; set strategy.verifier to one of: "
                          + ", ".join(sorted(VERIFIERS)))
    params = SamplingParams(
        temperature=cfg["temperature"], top_p=cfg["top_p"], top_k=cfg["top_k"], max_tokens=cfg["max_tokens"],
        stop=tuple(cfg.get("stop") or ()), logprobs=0 if getattr(verifier, "needs_logprobs", False) else None,
    )
    if select_cls is MajorityVote:
        if cfg["tie_break"] not in ("first", "score"):
            raise ConfigError(f"strategy.tie_break={cfg['tie_break']!r}; choose one of: first, score")
        selector = MajorityVote(cfg["tie_break"])
    else:
        selector = select_cls()
    return Strategy(search_cls(cfg["n"], params), selector, verifier, name=cfg["name"])


def build_problems(cfg: Mapping[str, Any]) -> list[Problem]:
    spec = DatasetSpec(**{k: cfg[k] for k in DatasetSpec.__dataclass_fields__ if k in cfg})
    prompt = cfg.get("prompt") or {}
    template = PromptTemplate(user=prompt.get("user", "{question}"), system=prompt.get("system"),
                              few_shot=tuple(dict(e) for e in prompt.get("few_shot") or ()))
    return template.apply(load_problems(spec))


def build_model_path(cfg: Mapping[str, Any]) -> str:
    return resolve_model(ModelSource.from_config(cfg), cfg["name"])


def build_backend(backend_cfg: Mapping[str, Any], model_path: str, seed: int):
    _choice("backend.kind", backend_cfg["kind"], BACKENDS)
    from ttscale.backends.vllm import VLLMBackend, apply_env, is_cpu_platform

    apply_env(backend_cfg.get("env"))  # before vLLM is imported: it reads some of them at import
    engine_args = dict(backend_cfg.get("engine_args") or {})
    if is_cpu_platform():
        engine_args.update(backend_cfg.get("cpu_engine_args") or {})
    return VLLMBackend(model_path, seed=seed, seed_mode=backend_cfg["seed_mode"], engine_args=engine_args,
                       env=backend_cfg.get("env") or {})


def make_backend(model: str = "smollm2-135m", backend: str = "vllm", seed: int = 0):
    """A backend from the shipped configs by name: `make_backend("smollm2-135m")` on a laptop."""
    from ttscale.config import group_config

    model_path = build_model_path(group_config("model", model))
    return build_backend(group_config("backend", backend), model_path, seed)
