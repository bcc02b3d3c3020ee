"""A strategy config into a Strategy: its search, selection and verifier by name (the registry), the
sampling params, the step generator; and the checks made before anything starts (the keys a strategy
reads, the token statistics its backend must return)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from ttscale.config import VerifierConfig
from ttscale.confidence import StatsSpec
from ttscale.strategies import registry
from ttscale.strategies.step import StepGenerator
from ttscale.strategies.step.resampling import SCHEMES
from ttscale.strategies.strategy import Strategy
from ttscale.types import SamplingParams
from ttscale.verifiers.base import AGGREGATIONS, traits_of
from ttscale.verifiers.logprob import MeanLogprob, MeanTokenProbability
from ttscale.verifiers.oracle import GroundTruth
from ttscale.verifiers.self_eval import SelfEvaluation
from ttscale.build.common import ConfigError, _choice, _positive


DEFAULT_TOP_K = 20
VERIFIERS = {
    "mean_logprob": lambda v, backend, grader: MeanLogprob(),
    "mean_token_prob": lambda v, backend, grader: MeanTokenProbability(),
    "self_eval": lambda v, backend, grader: SelfEvaluation(backend, v["granularity"], v["aggregation"],
                                                           v["step_delimiter"], v["max_steps"], v["top_k"]),
    "oracle": lambda v, backend, grader: GroundTruth(grader),
    "prm": lambda v, backend, grader: _prm(v),
    "unit_tests": lambda v, backend, grader: _unit_tests(v, grader),
}


def _imported_verifier(path: str):
    """A verifier class by import path, built from its dataclass fields: `backend` and `grader` are
    given when it has such fields, the rest come from verifier.options."""
    try:
        cls, fixed = registry.resolve("verifier", path)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return lambda v, backend, grader: registry.build(cls, {}, {"backend": backend, "grader": grader}, fixed,
                                                     v.get("options") or {})


def _unit_tests(v: Mapping[str, Any], grader):
    from ttscale.verifiers.unit_tests import UnitTests

    _choice("verifier.tests", v["tests"], ("visible", "all"))
    return UnitTests(grader, v["tests"])


def _prm(v: Mapping[str, Any]):
    from ttscale.verifiers.prm import FORMATS, TransformersPRM, VLLMPoolingPRM

    if not v.get("path"):
        raise ValueError("path is required for a PRM (a Hugging Face id or a local folder)")
    _choice("verifier.format", v.get("format"), FORMATS)
    _choice("verifier.runner", v["runner"], ("transformers", "vllm"))
    options = {k: v[k] for k in ("step_token", "system") if v.get(k) is not None}
    if v["runner"] == "vllm":
        return VLLMPoolingPRM(v["path"], v["format"], v["aggregation"], v["step_delimiter"],
                              dict(v.get("engine_args") or {}), options)
    return TransformersPRM(v["path"], v["format"], v["aggregation"], v["step_delimiter"], v["batch_size"],
                           v["dtype"], v["device"], options)


def build_verifier(strategy_cfg: Mapping[str, Any], verifier_cfg: Mapping[str, Any] | None, backend=None, grader=None):
    """The chosen verifier config, else the strategy's default verifier, else None."""
    verifier_cfg = dict(verifier_cfg or {})
    name = verifier_cfg.get("name") or strategy_cfg.get("verifier")
    if name is None:
        return None
    if ":" in name:  # a user's own verifier: package.module:Class, its keys in verifier.options
        make = _imported_verifier(name)
    else:
        make = _choice("verifier" if verifier_cfg.get("name") else "strategy.verifier", name, VERIFIERS)
    if verifier_cfg.get("aggregation", "mean") not in AGGREGATIONS:
        raise ConfigError(f"verifier.aggregation={verifier_cfg['aggregation']!r}; choose one of: {', '.join(AGGREGATIONS)}")
    defaults = asdict(VerifierConfig())  # one source of defaults: the schema
    merged = {**defaults, **verifier_cfg}
    try:
        verifier = make(merged, backend, grader)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"verifier.{exc}") from None
    traits = traits_of(verifier)
    if traits.separate_model and not merged.get("params"):
        raise ConfigError(f"verifier.params is required for verifier={name}: it is a model of its own, and its FLOPs "
                          "would otherwise be priced at the policy's size (give its parameter count, e.g. 7.1e9)")
    if traits.needs_top_logprobs and backend is not None and not backend.top_logprobs:
        raise ConfigError(f"verifier={name} reads top-k logprobs, and this backend returns none: every score would "
                          "be a guess and the search would run unguided (use backend=vllm, or another verifier)")
    return verifier


def build_strategy(cfg: Mapping[str, Any], verifier_cfg: Mapping[str, Any] | None = None, backend=None,
                   grader=None, extra_stop: tuple[str, ...] = (), step_delimiter: str = "\n\n") -> Strategy:
    """A strategy from its config: the search and the selection are found by name (or import path)
    in ttscale.strategies.registry and built from their dataclass fields."""
    try:
        search_cls, search_fixed = registry.resolve("search", cfg["search"])
        select_cls, select_fixed = registry.resolve("select", cfg["select"])
    except ValueError as exc:
        raise ConfigError(f"strategy.{exc}") from None
    step_wise = registry.is_step_wise(search_cls)
    if getattr(backend, "token_ids", True) is False:  # a server backend in chat mode (no tokenizer)
        if getattr(search_cls, "needs_token_ids", False) or step_wise:
            # step-wise search also needs stop strings kept, stop reasons and continued assistant turns:
            # vLLM's extensions, which a hosted chat API refuses or lacks
            raise ConfigError(f"strategy.search={cfg['search']!r} "
                              + ("continues partial solutions" if step_wise else "works on token ids")
                              + ", and the backend has no tokenizer (chat mode): set backend.tokenizer (the served "
                              "model's; backend.tokenizer=model for the model config's) on a vLLM server")
    # strategy.options: keys beyond the shared schema; the selection's go to it, the rest to the search
    options = dict(cfg.get("options") or {})
    select_keys = {f.name for f in fields(select_cls)}
    select_options = {k: v for k, v in options.items() if k in select_keys}
    search_options = {k: v for k, v in options.items() if k not in select_keys}
    try:
        selector = registry.build(select_cls, cfg, {}, select_fixed, select_options)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"strategy.{exc}") from None
    verifier = build_verifier(cfg, verifier_cfg, backend, grader)
    _positive("strategy.n", cfg["n"])
    _positive("strategy.temperature", cfg["temperature"], allow_zero=True)
    _positive("strategy.max_tokens", cfg["max_tokens"])
    if cfg["temperature"] == 0 and (cfg["n"] > 1 or step_wise):
        raise ConfigError(f"strategy.temperature=0 is greedy: all {cfg['n']} samples would be the same (and vLLM "
                          "refuses n > 1 greedy); set strategy.temperature > 0, or strategy.n=1 with a sampling search")
    if not 0 < cfg["top_p"] <= 1:
        raise ConfigError(f"strategy.top_p={cfg['top_p']!r} must be in (0, 1]")
    _check_statistics(cfg, search_cls, selector, backend)
    if ((selector.needs_scores and not getattr(search_cls, "scores_trajectories", False)) or step_wise) and verifier is None:
        needs = f"strategy.search={cfg['search']!r}" if step_wise else f"strategy.select={cfg['select']!r}"
        raise ConfigError(f"{needs} needs scores; choose a verifier: "
                          + ", ".join(f"verifier={name}" for name in sorted(VERIFIERS)))
    traits = traits_of(verifier)
    weights_from_scores = [f"strategy.select={cfg['select']!r}"] if selector.needs_probability_scores else []
    if getattr(search_cls, "needs_probability_scores", False):  # declared by the search class
        weights_from_scores.append(f"strategy.search={cfg['search']!r}")
    if verifier is not None and weights_from_scores and not traits.probability:
        low, high = traits.score_range
        raise ConfigError(f"{' and '.join(weights_from_scores)} use scores as weights in [0, 1], and the verifier's "
                          f"scores lie in [{low}, {high}]: use a probability-valued verifier such as "
                          "verifier=mean_token_prob or verifier=self_eval")
    logprobs = cfg.get("logprobs")
    if selector.needs_stats:
        logprobs = logprobs or DEFAULT_TOP_K
    elif logprobs is None and traits.needs_logprobs:
        logprobs = 0
    window = cfg.get("stats_window", 2048)
    _positive("strategy.stats_window", window)
    params = SamplingParams(
        temperature=cfg["temperature"], top_p=cfg["top_p"], top_k=cfg["top_k"], max_tokens=cfg["max_tokens"],
        stop=tuple(cfg.get("stop") or ()) + tuple(extra_stop), logprobs=logprobs, stats=StatsSpec(window=window, tail=window),
        keep_series=getattr(selector, "needs_series", False),  # per-token series on the final samples (tail entropy)
    )
    try:
        if step_wise:  # the search scores partial solutions as it goes: the final candidates arrive scored
            injected = {"verifier": verifier, "generator": _step_generator(cfg, params, step_delimiter)}
        else:
            injected = {"params": params}
            if getattr(search_cls, "needs_generator", False):  # steps without a verifier (phi-decoding)
                injected["generator"] = _step_generator(cfg, params, step_delimiter)
        search = registry.build(search_cls, cfg, injected, search_fixed, search_options)
        return Strategy(search, selector, None if step_wise else verifier, name=cfg["name"])
    except ConfigError:
        raise
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"strategy.{exc}") from None


@dataclass(frozen=True)
class DeclaredBackend:
    """What a backend config will return, known before anything starts (for checks at start)."""

    top_logprobs: bool = True
    sampled_logprobs: bool = True
    token_ids: bool = True


def declared_backend(backend_cfg: Mapping[str, Any]) -> DeclaredBackend:
    kind = backend_cfg.get("kind")
    if kind == "scripted":
        synthetic = bool(backend_cfg.get("synthetic_logprobs") or 0)
        return DeclaredBackend(top_logprobs=synthetic, sampled_logprobs=synthetic)
    if kind == "openai":
        return DeclaredBackend(token_ids=backend_cfg.get("tokenizer", "model") is not None)
    return DeclaredBackend()


STRATEGY_KEYS = ("name", "search", "select", "n", "temperature", "top_p", "top_k", "max_tokens", "stop", "logprobs",
                 "stats_window", "options", "verifier")  # read for every strategy (build_strategy)
STEP_KEYS = ("aggregation", "continuation", "last_step", "lookahead", "lookahead_scoring", "max_step_tokens",
             "max_steps", "resampling", "weight_temperature", "answer_marker", "step_delimiter")  # _step_generator


def strategy_keys(cfg: Mapping[str, Any]) -> set[str]:
    """The strategy config keys this strategy reads: the shared ones, the step generator's for a
    step-wise search, and its search's and selection's own fields (by their config names)."""
    try:
        search_cls, search_fixed = registry.resolve("search", cfg["search"])
        select_cls, select_fixed = registry.resolve("select", cfg["select"])
    except ValueError as exc:
        raise ConfigError(f"strategy.{exc}") from None
    keys = set(STRATEGY_KEYS)
    if registry.is_step_wise(search_cls) or getattr(search_cls, "needs_generator", False):
        keys.update(STEP_KEYS)
    for cls, fixed in ((search_cls, search_fixed), (select_cls, select_fixed)):
        keys.update(f.metadata.get("config", f.name) for f in fields(cls)
                    if f.init and f.name not in (fixed or {}) and f.name not in ("params", "generator", "verifier"))
    return keys


def check_strategy_overrides(cfgs: Sequence[Mapping[str, Any]], overrides: Sequence[str]) -> None:
    """Refuse `strategy.KEY=...` (or `+strategy.KEY=...`) when no strategy of the run (of the sweep, when
    it sweeps strategies: a key one of them reads is fine) reads KEY: the value would be silently
    ignored (`strategy.eta=90` on self_consistency)."""
    by_name = {cfg["name"]: cfg for cfg in cfgs}
    readable = {name: strategy_keys(cfg) for name, cfg in by_name.items()}
    for override in overrides:
        name, _, _ = override.lstrip("+~").partition("=")
        if not name.startswith("strategy.") or name.count(".") != 1:
            continue
        key = name.split(".", 1)[1]
        if not any(key in keys for keys in readable.values()):
            if len(by_name) == 1:
                cfg = next(iter(by_name.values()))
                raise ConfigError(f"strategy.{key} is not read by strategy={cfg['name']} (search {cfg['search']}, "
                                  f"selection {cfg['select']}): it would be ignored; its keys: "
                                  f"{', '.join(sorted(readable[cfg['name']]))}")
            raise ConfigError(f"strategy.{key} is not read by any strategy of this sweep ({', '.join(by_name)}): "
                              "it would be ignored")


def check_statistics(cfg: Mapping[str, Any], backend) -> None:
    """`_check_statistics` from a strategy config (before any backend starts: a DeclaredBackend)."""
    try:
        search_cls, _ = registry.resolve("search", cfg["search"])
        select_cls, select_fixed = registry.resolve("select", cfg["select"])
        options = dict(cfg.get("options") or {})
        select_keys = {f.name for f in fields(select_cls)}
        selector = registry.build(select_cls, cfg, {}, select_fixed, {k: v for k, v in options.items() if k in select_keys})
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"strategy.{exc}") from None
    _check_statistics(cfg, search_cls, selector, backend)


def _check_statistics(cfg: Mapping[str, Any], search_cls, selector, backend) -> None:
    """Refuse before the first problem a method that reads token statistics the backend does not
    return (a backend declares `top_logprobs` and `sampled_logprobs`): every problem would fail."""
    if getattr(selector, "needs_series", False) and not getattr(search_cls, "keeps_series", False):
        raise ConfigError(f"strategy={cfg['name']}: strategy.select={cfg['select']!r} reads every sample's per-token "
                          f"statistics, and strategy.search={cfg['search']!r} does not keep them: every problem would "
                          "fail; use search=parallel, adaptive or deepconf_online")
    if backend is None:
        return
    needs = []
    if getattr(selector, "needs_top_logprobs", selector.needs_stats):
        needs.append((f"strategy.select={cfg['select']!r}", "top-k logprobs", "top_logprobs"))
    if getattr(search_cls, "needs_top_logprobs", False):
        needs.append((f"strategy.search={cfg['search']!r}", "top-k logprobs", "top_logprobs"))
    if getattr(search_cls, "needs_sampled_logprobs", False):
        needs.append((f"strategy.search={cfg['search']!r}", "each sampled token's logprob", "sampled_logprobs"))
    for who, what, capability in needs:
        if not getattr(backend, capability, True):
            raise ConfigError(f"strategy={cfg['name']}: {who} reads {what}, and this backend returns none, so every "
                              "problem would fail: use backend=vllm or backend=openai (a vLLM server), or "
                              "backend.synthetic_logprobs=20 on the scripted backend")


def logprobs_mode(strategy_cfg: Mapping[str, Any]) -> str | None:
    """The engine logprobs mode the strategy's search declares (`logprobs_mode = ...`), if any."""
    try:
        cls, _ = registry.resolve("search", strategy_cfg["search"])
    except ValueError as exc:
        raise ConfigError(f"strategy.{exc}") from None
    return getattr(cls, "logprobs_mode", None)


def _step_generator(cfg: Mapping[str, Any], params: SamplingParams, step_delimiter: str) -> StepGenerator:
    for key in ("max_step_tokens", "max_steps", "block_tokens", "beam_width", "k", "sweeps", "references",
                "expand_per_round"):
        _positive(f"strategy.{key}", cfg[key])
    _positive("strategy.weight_temperature", cfg["weight_temperature"])
    _positive("strategy.lookahead", cfg["lookahead"], allow_zero=True)
    _choice("strategy.resampling", cfg["resampling"], SCHEMES)
    # "model" (the whole partial solution judged as one step) is the particle methods' reference reward
    model_ok = cfg["search"] in ("particle_filtering", "particle_gibbs")
    _choice("strategy.aggregation", cfg["aggregation"], tuple(a for a in AGGREGATIONS if a != "model" or model_ok))
    _choice("strategy.lookahead_scoring", cfg["lookahead_scoring"], ("current", "lookahead"))
    _choice("strategy.continuation", cfg["continuation"], ("ids", "text"))
    _choice("strategy.last_step", cfg["last_step"], ("complete", "step"))
    return StepGenerator(params, cfg.get("step_delimiter") or step_delimiter, cfg["max_step_tokens"],
                         cfg["max_steps"], cfg["max_tokens"], cfg.get("answer_marker"),
                         continuation=cfg["continuation"], last_step=cfg["last_step"])
