"""The command's checks before its first job starts, each answering one line or None: the overrides
(every job of a sweep composed and built as far as it can be without a model), what Hydra itself
would fail on (a launcher not installed, an output folder that cannot be written), and sweep jobs
that would share a folder."""

from __future__ import annotations

import itertools
import math
import os
import tempfile
from pathlib import Path

from ttscale.config import CONFIG_NAME, conf_dir

FULL_CHECK = 64  # sweeps of up to this many jobs are checked job by job before the first starts


def _variants(overrides: list[str]) -> list[list[str]]:
    """Override lists to check: every combination of a sweep's values (up to FULL_CHECK of them, so a
    bad pair, such as a key only one strategy reads, is found before the first job); past that, every
    sweep at its first value, then each other sweep value once."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = [o for o in OverridesParser.create().parse_overrides(overrides) if not o.is_hydra_override()]
    values: list[list[str]] = []
    for override in parsed:
        if override.is_sweep_override():
            try:
                options = [f"{override.get_key_element()}={v}" for v in override.sweep_string_iterator()]
            except Exception:  # range/interval sweeps: not checked here
                options = []
            values.append(options)
        else:
            values.append([override.input_line])
    present = [v for v in values if v]
    if math.prod(len(v) for v in present) <= FULL_CHECK:
        return [list(combo) for combo in itertools.product(*present)]
    base = [v[0] for v in values if v]
    variants = [base]
    for i, options in enumerate(values):
        for option in options[1:]:
            variant = list(base)
            variant[sum(1 for v in values[:i] if v)] = option
            variants.append(variant)
    return variants


def _explain(exc: Exception, overrides: list[str]) -> str:
    """One line from a Hydra/OmegaConf composition error: the key, and the valid keys or choices."""
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    text = str(exc)
    if "Could not find '" in text:
        missing = text.split("Could not find '", 1)[1].split("'", 1)[0]
        group, _, name = missing.rpartition("/")
        listing = text.split("Available options", 1)[1].split("Config search path", 1)[0] if "Available options" in text else ""
        options = [ln.strip() for ln in listing.splitlines()[1:] if ln.strip()]
        options = [o for o in options if not o.endswith("_schema") and not o.startswith("_")]
        return f"{group}={name} is not a known choice; choose one of: {', '.join(options) or '(none)'}"
    cause = exc
    while cause is not None and not isinstance(cause, OmegaConfBaseException):
        cause = cause.__cause__
    if cause is not None:
        key = getattr(cause, "full_key", None) or ""
        reason = str(cause).strip().splitlines()[0]
        if isinstance(cause, (ConfigAttributeError, ConfigKeyError)):
            parent = key.rpartition(".")[0]
            keys = ", ".join(_keys_of(parent, overrides))
            return f"unknown config key '{key}'; {parent or 'the top level'} has keys: {keys}"
        return f"bad value for '{key}': {reason}"
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def _keys_of(parent: str, overrides: list[str]) -> list[str]:
    from hydra import compose
    from omegaconf import OmegaConf

    groups = [o for o in overrides if "=" in o and (conf_dir() / o.split("=", 1)[0]).is_dir()]
    try:
        cfg = compose(config_name=CONFIG_NAME, overrides=groups)
        node = OmegaConf.select(cfg, parent) if parent else cfg
        keys = sorted(str(k) for k in node.keys())
    except Exception:
        return []
    if parent == "strategy":  # the chosen strategy's own keys, not every method's (~90)
        return _strategy_keys(cfg, keys) or keys
    return keys


STRATEGY_COMMON = ("name", "search", "select", "verifier", "n", "temperature", "top_p", "top_k", "max_tokens",
                   "stop", "logprobs", "stats_window", "options")


def _strategy_keys(cfg, schema_keys: list[str]) -> list[str]:
    """The keys the composed strategy reads: the shared ones, its yaml's, and its search's and
    selection's own (their dataclass fields' config names)."""
    from dataclasses import fields

    from ttscale.strategies import registry

    keys = set(STRATEGY_COMMON) | {str(k) for k in (cfg.strategy.get("options") or {})}
    try:
        own = conf_dir() / "strategy" / f"{cfg.strategy.name}.yaml"
        if own.is_file():
            import yaml

            keys |= {str(k) for k in (yaml.safe_load(own.read_text()) or {}) if k != "defaults"}
        for kind in ("search", "select"):
            if ":" in str(cfg.strategy[kind]):
                continue
            cls, _ = registry.resolve(kind, str(cfg.strategy[kind]))
            keys |= {f.metadata.get("config", f.name) for f in fields(cls) if f.init}
            if registry.is_step_wise(cls):
                keys |= {"step_delimiter", "max_step_tokens", "max_steps", "last_step", "answer_marker", "continuation"}
    except Exception:
        return []
    return sorted(keys & set(schema_keys))


def check_logger(name: str) -> None:
    import importlib.util

    from ttscale.build import ConfigError
    from ttscale.loggers import LOGGERS

    if name not in LOGGERS:
        raise ConfigError(f"logger.name={name!r} is not a known choice; choose one of: {', '.join(LOGGERS)}")
    if name == "wandb" and importlib.util.find_spec("wandb") is None:
        raise ConfigError("logger=wandb needs the wandb package: pip install wandb (or the [launchers] extra)")


def check_overrides(overrides: list[str], multirun: bool = False) -> str | None:
    """Compose the config with the overrides (first value of each sweep) and build what can be built
    without a model; check what Hydra itself would fail on after the first job is set up (a launcher,
    or other hydra/ group choice, that is not installed; an output folder that cannot be written; a
    folder key the run does not read). Each variant is composed once. Returns one line describing the
    first problem, or None when all is well."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import MissingConfigException
    from omegaconf import OmegaConf

    from ttscale.build import (ConfigError, build_strategy, check_grader, check_model, check_statistics,
                               check_strategy_overrides, declared_backend)
    from ttscale.config import register_schemas

    ignored, used = ("hydra.run.dir", "hydra.sweep.dir") if multirun else ("hydra.sweep.dir", "hydra.run.dir")
    if any(o.lstrip("+").startswith(ignored + "=") for o in overrides):  # Hydra would ignore it silently
        what = "a sweep (-m, or a recipe that sweeps)" if multirun else "a single run"
        return f"{ignored} is not read by {what}: its folder is {used}=..."
    register_schemas()
    hydra_overrides = [o for o in OverridesParser.create().parse_overrides(overrides) if o.is_hydra_override()]
    strategies = []
    folder = None
    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        for index, variant in enumerate(_variants(overrides)):
            try:
                if index == 0:  # the first job's config with Hydra's own (its output folder, launcher)
                    try:
                        cfg = compose(config_name=CONFIG_NAME, return_hydra_config=True,
                                      overrides=variant + [o.input_line for o in hydra_overrides])
                    except MissingConfigException as exc:
                        return _hydra_choice(hydra_overrides) or _explain(exc, variant)
                    folder = Path(str(cfg.hydra.sweep.dir if multirun else cfg.hydra.run.dir))
                else:
                    cfg = compose(config_name=CONFIG_NAME, overrides=variant)
                strategy_cfg = OmegaConf.to_container(cfg.strategy, resolve=True)
                build_strategy(strategy_cfg, OmegaConf.to_container(cfg.verifier, resolve=True))
                check_statistics(strategy_cfg, declared_backend(OmegaConf.to_container(cfg.backend, resolve=True)))
                strategies.append(strategy_cfg)
                check_logger(cfg.logger.name)
                check_model(OmegaConf.to_container(cfg.model, resolve=True), OmegaConf.to_container(cfg.backend, resolve=True))
                if not isinstance(cfg.concurrency, int) or cfg.concurrency < 1:
                    raise ConfigError(f"concurrency={cfg.concurrency!r}: the problems in flight at once, an integer >= 1")
                check_grader(OmegaConf.to_container(cfg.dataset, resolve=True),
                             OmegaConf.to_container(cfg.grader, resolve=True),
                             OmegaConf.to_container(cfg.verifier, resolve=True), strategy_cfg)
            except ConfigError as exc:
                return str(exc)
            except Exception as exc:
                return _explain(exc, variant)
    try:
        check_strategy_overrides(strategies, overrides)
    except ConfigError as exc:
        return str(exc)
    return _check_folder(folder, "hydra.sweep.dir" if multirun else "hydra.run.dir") if folder else None


def _hydra_choice(hydra_overrides) -> str | None:
    """A hydra/ group choice that is not installed (a launcher's plugin), in one line."""
    from hydra.core.global_hydra import GlobalHydra

    for o in hydra_overrides:
        if "/" in o.key_or_group and "=" in o.input_line:
            options = GlobalHydra.instance().config_loader().get_group_options(o.key_or_group)
            if o.value() not in options:
                return (f"{o.key_or_group}={o.value()} is not a known choice; choose one of: {', '.join(options)}"
                        + (" (a launcher's plugin adds its choice once installed, e.g. pip install "
                           f"hydra-{o.value()}-launcher; docs/EXPERIMENTS.md)" if o.key_or_group == "hydra/launcher" else ""))
    return None


def _check_folder(folder: Path, key: str) -> str | None:
    """The run's output folder, or the nearest folder above it that exists, must take a new folder."""
    existing = next((p for p in [folder, *folder.parents] if p.exists()), Path("."))
    why = None if existing.is_dir() else "not a folder"
    if why is None:
        try:  # a real probe: permissions alone do not tell (root, read-only mounts, /proc)
            os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".ttscale-probe-"))
        except OSError as exc:
            why = exc.strerror.lower() if exc.strerror else "not writable"
    if why:
        return f"{key}={folder}: cannot write there ({existing}: {why}); choose another output folder"
    return None


def check_job_folders(overrides: list[str]) -> str | None:
    """A sweep whose jobs would share one folder (they differ only in runtime keys, or a value is
    repeated): one line, before the first job. Such jobs would resume each other's results, or write
    one file at once."""
    from ttscale.config import job_dir

    variants = _variants(overrides)
    if len(variants) > FULL_CHECK:
        return None
    seen: dict[str, list[str]] = {}
    for variant in variants:
        name = job_dir(variant)
        if name in seen:
            differ = sorted(set(variant) ^ set(seen[name]))
            why = (f"they differ only in {', '.join(differ)}, a runtime key that names no folder: sweep it in "
                   "separate sweeps" if differ else "a value is repeated in the sweep")
            return f"two jobs of this sweep would share the folder {name!r} ({why})"
        seen[name] = variant
    return None
