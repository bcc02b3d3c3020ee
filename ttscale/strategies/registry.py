"""Methods by name: a search or a selection is one Python file that declares itself, plus one yaml.

Each method file ends with `METHODS = {"name": Class}` (a constant: no registry is mutated at import).
`strategy.search=name` finds the class among the modules of ttscale.strategies.search (sampling
searches) and ttscale.strategies.step (step-wise searches); `strategy.select=name` among
ttscale.strategies.select. A name with a colon is an import path, so a user's own method plugs into
the CLI without touching ttscale: `strategy.search=my_pkg.my_module:MySearch`.

A method's dataclass fields are its config schema. `build` fills each field from, in order: what
the runtime injects (the verifier, the step generator, the sampling params), `strategy.options`
(keys a method adds beyond the shared schema: an unknown one is an error naming the method's keys),
and the shared `strategy.*` key of the same name (a field may name another key with
`field(metadata={"config": "weight_temperature"})`). An entry may be `(Class, fixed_kwargs)` for a
preset (`inverse_entropy` is a WeightedVote with weight fixed). A search class declares
`step_wise = True` when it extends partial solutions step by step (it is then given a verifier and a
step generator); plain sampling searches are given the sampling params.
"""

from __future__ import annotations

import importlib
import pkgutil
import types
import typing
from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

PACKAGES = {"search": ("ttscale.strategies.search", "ttscale.strategies.step"),
            "select": ("ttscale.strategies.select",), "verifier": ()}


def methods(kind: str) -> dict[str, Any]:
    """name -> Class (or (Class, fixed kwargs)) of every built-in method of this kind."""
    found: dict[str, Any] = {}
    for package in PACKAGES[kind]:
        root = importlib.import_module(package)
        for info in pkgutil.iter_modules(root.__path__):
            module = importlib.import_module(f"{package}.{info.name}")
            found.update(getattr(module, "METHODS", {}))
    return found


def resolve(kind: str, name: str) -> tuple[type, dict[str, Any]]:
    """The class (and fixed kwargs) a `strategy.search` / `strategy.select` value names."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            entry = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"{kind}={name!r}: cannot import it ({type(exc).__name__}: {exc})") from None
    else:
        table = methods(kind)
        if name not in table:
            raise ValueError(f"{kind}={name!r} is not a known choice; choose one of: {', '.join(sorted(table))} "
                             "(or an import path, package.module:Class)")
        entry = table[name]
    cls, fixed = entry if isinstance(entry, tuple) else (entry, {})
    if not is_dataclass(cls):
        raise ValueError(f"{kind}={name!r}: {cls!r} is not a dataclass (its fields are its config schema)")
    return cls, dict(fixed)


def is_step_wise(cls: type) -> bool:
    """Declared by the class (`step_wise = True`); plain sampling searches need not declare it."""
    return bool(getattr(cls, "step_wise", False))


def build(cls: type, cfg: Mapping[str, Any], injected: Mapping[str, Any], fixed: Mapping[str, Any] | None = None,
          options: Mapping[str, Any] | None = None) -> Any:
    """An instance of `cls` from the config (see the module doc)."""
    options = dict(options or {})
    init = [f for f in fields(cls) if f.init]
    own = {f.name for f in init} - set(injected)
    injected = {k: v for k, v in injected.items() if k in {f.name for f in init}}
    unknown = sorted(set(options) - own)
    if unknown:
        raise ValueError(f"options.{unknown[0]} is not a key of {cls.__name__}; its keys: {', '.join(sorted(own))}")
    kwargs: dict[str, Any] = {}
    for f in init:
        key = f.metadata.get("config", f.name)
        if f.name in injected:
            kwargs[f.name] = injected[f.name]
        elif fixed and f.name in fixed:
            kwargs[f.name] = fixed[f.name]
        elif f.name in options:
            _check_type(cls, f.name, options[f.name])
            kwargs[f.name] = options[f.name]
        elif key in cfg:
            kwargs[f.name] = cfg[key]
        elif f.default is MISSING and f.default_factory is MISSING:
            raise ValueError(f"{cls.__name__} needs strategy.options.{f.name} (no default)")
    return cls(**kwargs)


def _check_type(cls: type, name: str, value: Any) -> None:
    """An option's value against its field's annotation, where that is a plain type (int, float, str,
    bool, or one of them or None): `options.keep=abc` for an int is refused, never passed on."""
    try:
        hint = typing.get_type_hints(cls).get(name)
    except Exception:  # an annotation that cannot be resolved: not checked
        return
    args = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    plain = (int, float, str, bool, type(None))
    if not args or not all(a in plain for a in args):
        return
    ok = any(isinstance(value, a) and not (a in (int, float) and isinstance(value, bool)) for a in args)
    ok = ok or (float in args and isinstance(value, int) and not isinstance(value, bool))
    if not ok:
        wanted = " or ".join("null" if a is type(None) else a.__name__ for a in args)
        raise ValueError(f"options.{name}={value!r}: {cls.__name__}.{name} is {wanted}")
