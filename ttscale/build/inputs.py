"""What a strategy runs on: the problems (dataset and prompt), the grader, the model's weights and the
backend; with the checks of each made before anything starts."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ttscale.data.loaders import DatasetSpec, load_problems
from ttscale.data.prompts import PromptTemplate
from ttscale.models.source import ModelSource, resolve_model
from ttscale.strategies import registry
from ttscale.types import Problem
from ttscale.build.common import ConfigError, _choice, _positive


BACKENDS = ("vllm", "openai", "scripted")


def build_problems(cfg: Mapping[str, Any], model_cfg: Mapping[str, Any] | None = None) -> list[Problem]:
    """Load and render the dataset: chat messages, or plain text for a base model (model.chat=false)."""
    spec = DatasetSpec(**{k: cfg[k] for k in DatasetSpec.__dataclass_fields__ if k in cfg})
    prompt = cfg.get("prompt") or {}
    template = PromptTemplate(user=prompt.get("user", "{question}"), system=prompt.get("system"),
                              few_shot=tuple(dict(e) for e in prompt.get("few_shot") or ()))
    plain = None
    if model_cfg is not None and not model_cfg.get("chat", True):
        plain = dict(model_cfg.get("plain_prompt") or {})
    return template.apply(load_problems(spec), plain)


def model_stop(model_cfg: Mapping[str, Any] | None) -> tuple[str, ...]:
    """Stop strings a base model needs (it would go on to write the next question)."""
    if model_cfg is None or model_cfg.get("chat", True):
        return ()
    from ttscale.data.prompts import PLAIN_DEFAULTS

    return ((model_cfg.get("plain_prompt") or {}).get("stop", PLAIN_DEFAULTS["stop"]),)


def check_grader(dataset_cfg: Mapping[str, Any], grader_cfg: Mapping[str, Any],
                 verifier_cfg: Mapping[str, Any] | None = None, strategy_cfg: Mapping[str, Any] | None = None) -> None:
    """The grader's choices, checked without starting anything."""
    from ttscale.data.loaders import FORMATS
    from ttscale.graders.code.grader import GROUPINGS
    from ttscale.graders.code.sandbox import ISOLATIONS

    _choice("dataset.format", dataset_cfg.get("format", "qa"), FORMATS)
    if (verifier_cfg or {}).get("name") == "unit_tests" and dataset_cfg.get("format", "qa") == "qa":
        raise ConfigError("verifier=unit_tests needs a code dataset (dataset=humaneval or dataset=mbpp)")
    for kind in ("search", "select"):
        name = (strategy_cfg or {}).get(kind)
        if name and ":" not in str(name) and dataset_cfg.get("format", "qa") == "qa":
            cls, _ = registry.resolve(kind, name)
            if getattr(cls, "needs_code", False):
                raise ConfigError(f"strategy.{kind}={name} runs programs: it needs a code dataset (dataset=humaneval or "
                                  "dataset=mbpp)")
    from ttscale.graders.math import FALLBACKS, PERCENT_POLICIES

    _choice("grader.percent", grader_cfg.get("percent", "strip"), PERCENT_POLICIES)
    _choice("grader.fallback", grader_cfg.get("fallback", "last_number"), FALLBACKS)
    _positive("grader.max_answer_chars", grader_cfg.get("max_answer_chars", 1000))
    _positive("grader.extract_timeout", grader_cfg.get("extract_timeout", 5))
    choices = grader_cfg.get("choices")
    if choices is not None and (not isinstance(choices, str) or not choices.isalnum() or len(set(choices)) != len(choices)):
        raise ConfigError(f"grader.choices={choices!r}: the letters of the options, e.g. ABCD (or null)")
    _choice("grader.isolation", grader_cfg.get("isolation", "auto"), ISOLATIONS)
    _choice("grader.code_grouping", grader_cfg.get("code_grouping", "program"), GROUPINGS)
    _positive("grader.code_timeout", grader_cfg.get("code_timeout", 10.0))


def build_grader(dataset_cfg: Mapping[str, Any], grader_cfg: Mapping[str, Any], model_cfg: Mapping[str, Any] | None = None):
    """Math datasets are graded by answer equivalence, code datasets by running their tests. A model
    with a thinking block (model.thinking.start set) adds its end marker to grader.thinking_end."""
    from ttscale.graders.math import MathGrader

    check_grader(dataset_cfg, grader_cfg)
    if dataset_cfg.get("format", "qa") == "qa":
        from dataclasses import fields

        from ttscale.graders.math import MathSettings

        options = {f.name: grader_cfg[f.name] for f in fields(MathSettings) if f.name in grader_cfg}
        thinking = dict((model_cfg or {}).get("thinking") or {})
        ends = list(options.get("thinking_end", ["</think>"]))
        if thinking.get("start") and thinking.get("end") and thinking["end"] not in ends:
            ends.append(thinking["end"])
        options["thinking_end"] = tuple(ends)
        settings = MathSettings(**options)
        return MathGrader(workers=grader_cfg.get("workers", 2), timeout=grader_cfg.get("timeout", 10.0), settings=settings)
    from ttscale.graders.code.grader import code_grader
    from ttscale.graders.code.sandbox import SandboxError

    try:
        packages = grader_cfg.get("code_packages")
        return code_grader(grader_cfg["isolation"], grader_cfg["code_timeout"], grader_cfg["code_memory_mb"],
                           grader_cfg.get("code_parallel"), grader_cfg["code_grouping"],
                           grader_cfg.get("code_allow_root", False), None if packages is None else list(packages))
    except SandboxError as exc:  # isolation=bwrap where it cannot work
        raise ConfigError(f"grader.{exc}") from None
    except ValueError as exc:  # a code package that is not installed
        raise ConfigError(f"grader.code_packages: {exc}") from None


def check_model(model_cfg: Mapping[str, Any], backend_cfg: Mapping[str, Any]) -> None:
    """Before an engine starts (40 s on CPU): a model without weights named, or a local model folder
    that is not there, in one line. An `org/name` Hugging Face id is the engine's to fetch."""
    import re

    if not needs_model_weights(backend_cfg) or model_cfg.get("parts"):
        return
    name, path = model_cfg.get("name"), model_cfg.get("path")
    if path in (None, "", "???"):
        raise ConfigError(f"model={name} needs model.path=<a Hugging Face id or a local model folder>, "
                          f"e.g. model.path=Qwen/Qwen2.5-Math-1.5B-Instruct")
    text = str(path)
    hub_id = re.fullmatch(r"[\w.-]+(/[\w.-]+)?", text) and not text.startswith(".")  # org/name, or gpt2
    folder = Path(text).expanduser()
    if folder.is_file() and folder.suffix == ".gguf":  # a GGUF file vLLM loads itself
        return
    if folder.exists() or not hub_id:
        if not folder.is_dir():
            raise ConfigError(f"model.path={text}: no such model folder" + ("" if folder.exists() else
                              " (a local path: it must be a folder holding config.json; a Hugging Face id is org/name)"))
        if not (folder / "config.json").exists():
            raise ConfigError(f"model.path={text}: the folder holds no config.json (not a Hugging Face model folder)")


def build_model_path(cfg: Mapping[str, Any]) -> str:
    return resolve_model(ModelSource.from_config(cfg), cfg["name"])


def build_backend(backend_cfg: Mapping[str, Any], model_path: str | None, seed: int,
                  logprobs_mode: str | None = None):
    """logprobs_mode: what the sampled tokens' logprobs must be, when the strategy needs one (power
    sampling: processed_logprobs); it overrides backend.engine_args.logprobs_mode."""
    _choice("backend.kind", backend_cfg["kind"], BACKENDS)
    if backend_cfg["kind"] == "scripted":  # a stand-in model for pipeline tests: no weights, no engine
        from ttscale.backends.scripted import SCRIPTS, ScriptedBackend

        synthetic = backend_cfg.get("synthetic_logprobs") or 0
        if not isinstance(synthetic, int) or synthetic < 0:
            raise ConfigError(f"backend.synthetic_logprobs={synthetic!r}: the k of the invented top-k logprobs "
                              "per token (an integer >= 0; 0: none)")
        script = _choice("backend.script", backend_cfg.get("script"), {**SCRIPTS, "demo": None})
        if backend_cfg.get("script") == "demo":  # knows the references: the CLI tells it the problems
            from ttscale.backends.demo import DemoBackend

            accuracy = backend_cfg.get("demo_accuracy", 0.35)
            if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
                raise ConfigError(f"backend.demo_accuracy={accuracy!r}: how often the stand-in answers right, in [0, 1]")
            return DemoBackend(accuracy=float(accuracy), synthetic_logprobs=synthetic,
                               logprobs_mode=logprobs_mode or "raw_logprobs")
        return ScriptedBackend(script, logprobs_mode=logprobs_mode or "raw_logprobs", synthetic_logprobs=synthetic)
    if backend_cfg["kind"] == "openai":
        return _openai_backend(backend_cfg, model_path, logprobs_mode)
    from ttscale.backends.vllm import VLLMBackend, apply_env, is_cpu_platform

    apply_env(backend_cfg.get("env"))  # before vLLM is imported: it reads some of them at import
    engine_args = dict(backend_cfg.get("engine_args") or {})
    if is_cpu_platform():
        engine_args.update(backend_cfg.get("cpu_engine_args") or {})
    if logprobs_mode:
        engine_args["logprobs_mode"] = logprobs_mode
    return VLLMBackend(model_path, seed=seed, seed_mode=backend_cfg["seed_mode"], engine_args=engine_args,
                       fast_top_p=backend_cfg.get("fast_top_p", "auto"), env=backend_cfg.get("env") or {},
                       shutdown_grace=backend_cfg.get("shutdown_grace", 1.0))


def _openai_backend(cfg: Mapping[str, Any], model_path: str | None, logprobs_mode: str | None):
    from ttscale.backends.openai import OpenAIBackend

    _choice("backend.logprobs_mode", cfg["logprobs_mode"], ("raw_logprobs", "processed_logprobs"))
    if logprobs_mode and logprobs_mode != cfg["logprobs_mode"]:
        raise ConfigError(f"the strategy needs the sampled tokens' {logprobs_mode}, and backend.logprobs_mode is "
                          f"{cfg['logprobs_mode']}: start the server with --logprobs-mode {logprobs_mode} and set "
                          f"backend.logprobs_mode={logprobs_mode}")
    tokenizer = model_path if cfg.get("tokenizer") == "model" else cfg.get("tokenizer")
    try:
        return OpenAIBackend(cfg["endpoints"], cfg.get("model"), tokenizer=tokenizer, api_key_env=cfg.get("api_key_env"),
                             max_concurrency=cfg["max_concurrency"], timeout=cfg["timeout"],
                             stream_timeout=cfg["stream_timeout"], connect_timeout=cfg["connect_timeout"],
                             retry=cfg.get("retry"), send_seed=cfg["send_seed"], logprobs_mode=cfg["logprobs_mode"],
                             fast_top_p=cfg.get("fast_top_p", False))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def needs_model_weights(backend_cfg: Mapping[str, Any]) -> bool:
    """Whether the backend needs the model config's local folder (weights, or its tokenizer)."""
    return backend_cfg["kind"] == "vllm" or (backend_cfg["kind"] == "openai" and backend_cfg.get("tokenizer") == "model")


def make_backend(model: str = "smollm2-135m", backend: str = "vllm", seed: int = 0):
    """A backend from the shipped configs by name: `make_backend("smollm2-135m")` on a laptop."""
    from ttscale.config import group_config

    model_path = build_model_path(group_config("model", model))
    return build_backend(group_config("backend", backend), model_path, seed)
