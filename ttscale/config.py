"""The Hydra configs: where conf/ and recipes/ are, a recipe expanded into overrides, one group's option
merged over its schema (ttscale/schemas.py), job folders' names, and the schemas registered with Hydra,
so a wrong key or type fails at start, naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ttscale.schemas import (BackendConfig, Config, DatasetConfig, LoggerConfig, ModelConfig, StrategyConfig,
                             VerifierConfig)


CONFIG_NAME = "config"


def conf_dir() -> Path:
    """conf/ inside the installed package (wheel), else the repository's top-level conf/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "conf", here.parent / "conf"):
        if (candidate / f"{CONFIG_NAME}.yaml").exists():
            return candidate
    raise FileNotFoundError("ttscale's conf/ folder is missing from this installation")


def recipes_dir() -> Path:
    """recipes/ inside the installed package (wheel), else the repository's top-level recipes/."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "recipes", here.parent / "recipes"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("ttscale's recipes/ folder is missing from this installation")


def load_recipe(name: str) -> dict[str, Any]:
    """A recipe: description, paper, reported result, sweep flag and Hydra overrides."""
    import yaml

    folder = recipes_dir()
    path = folder / f"{name}.yaml"
    if not path.exists():
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        raise ValueError(f"recipe={name} is not a known choice; choose one of: {', '.join(options)}")
    recipe = yaml.safe_load(path.read_text()) or {}
    unknown = set(recipe) - {"description", "paper", "reported", "where", "sweep", "overrides"}
    if unknown or not isinstance(recipe.get("overrides"), list):
        raise ValueError(f"recipe {path}: needs a list of overrides; unknown keys: {sorted(unknown)}")
    recipe["overrides"] = [str(o) for o in recipe["overrides"]]
    return recipe


def expand_recipe(args: list[str]) -> list[str]:
    """`recipe=NAME` on the command line becomes the recipe's overrides (and -m for a sweep); the
    other arguments follow, so they override the recipe's."""
    names = [a.split("=", 1)[1] for a in args if a.startswith("recipe=")]
    if not names:
        return args
    if len(names) > 1:
        raise ValueError("give one recipe=NAME")
    recipe = load_recipe(names[0])
    rest = [a for a in args if not a.startswith("recipe=")]
    multirun = recipe.get("sweep") and not any(a in ("-m", "--multirun") for a in rest)

    def key(override: str) -> str:
        return override.split("=", 1)[0].lstrip("+~")

    mine = [o for o in recipe["overrides"] if key(o) not in {key(a) for a in rest if "=" in a}]
    return (["-m"] if multirun else []) + mine + rest


def group_config(group: str, name: str) -> dict[str, Any]:
    """One option of a config group (conf/GROUP/NAME.yaml) merged over its schema, as a plain dict."""
    from omegaconf import OmegaConf

    schemas = group_schemas()
    folder = conf_dir() / group
    path = folder / f"{name}.yaml"
    if group not in schemas or not path.exists():
        options = sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_")) if folder.is_dir() else []
        raise ValueError(f"{group}={name!r} is not a known choice; choose one of: {', '.join(options)}")
    node = OmegaConf.load(path)
    merged = OmegaConf.structured(schemas[group])
    for parent in node.pop("defaults", []):
        if isinstance(parent, str) and not parent.endswith("_schema") and parent != "_self_":
            merged = OmegaConf.merge(merged, group_config(group, parent))
        elif not isinstance(parent, str):  # a nested group, e.g. {prompt: boxed_cot}
            for sub, option in parent.items():
                merged = OmegaConf.merge(merged, {sub: OmegaConf.load(folder / sub / f"{option}.yaml")})
    return OmegaConf.to_container(OmegaConf.merge(merged, node), resolve=True)


def group_schemas() -> dict[str, type]:
    """The typed schema of each config group."""
    return {"model": ModelConfig, "backend": BackendConfig, "strategy": StrategyConfig, "dataset": DatasetConfig,
            "verifier": VerifierConfig, "logger": LoggerConfig}


# keys that say how a run runs, not what it is: left out of a sweep job's folder name, so a rerun that
# changes them resumes (a key or any key under it)
RUNTIME_PREFIXES = ("progress", "concurrency", "retry_errors", "trace", "grader.workers", "grader.timeout", "logger", "hydra")


def is_runtime_override(override: str) -> bool:
    key = str(override).lstrip("+~").partition("=")[0]
    return any(key == p or key.startswith(p + ".") or key.startswith(p + "/") for p in RUNTIME_PREFIXES)


def job_dir(overrides: Any, num: Any = 0) -> str:
    """A sweep job's folder name: its overrides, sorted and joined (`strategy=best_of_n,strategy.n=4`),
    runtime keys left out (RUNTIME_PREFIXES); so adding a value to a sweep adds a folder and every
    other job resumes in its own. A path separator in a value becomes '_'; a name over 120 bytes keeps
    its first 100 characters' worth and a hash of the whole; a job without overrides is named by its
    number."""
    import hashlib

    items = sorted(str(o) for o in (overrides or []) if not is_runtime_override(o))
    name = ",".join(items).replace("/", "_").replace("\0", "")
    if not name or name in (".", ".."):
        return f"job{num}"
    if len(name.encode()) > 120:
        digest = hashlib.sha256(name.encode()).hexdigest()[:12]
        while len(name.encode()) > 100:
            name = name[:-1]
        name = f"{name}-{digest}"
    return name


def register_resolvers() -> None:
    """The resolvers conf/config.yaml uses (hydra.sweep.subdir: ttscale_job_dir). Registered by every
    process that composes or runs a job (the CLI, and a job a launcher unpickles: cli.App)."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("ttscale_job_dir", job_dir, replace=True)


def register_schemas() -> None:
    """Register the schemas with Hydra's ConfigStore (config.yaml lists `ttscale_schema` first)."""
    from hydra.core.config_store import ConfigStore

    register_resolvers()
    store = ConfigStore.instance()
    store.store(name="ttscale_schema", node=Config)
    store.store(group="model", name="model_schema", node=ModelConfig)
    store.store(group="backend", name="backend_schema", node=BackendConfig)
    store.store(group="strategy", name="strategy_schema", node=StrategyConfig)
    store.store(group="dataset", name="dataset_schema", node=DatasetConfig)
    store.store(group="verifier", name="verifier_schema", node=VerifierConfig)
    store.store(group="logger", name="logger_schema", node=LoggerConfig)
