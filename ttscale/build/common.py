"""What every builder shares: the one-line config error, and the checks of a choice and of a positive value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class ConfigError(ValueError):
    """A config value that is out of range or not among the choices; the message names both."""


def _choice(key: str, value: Any, choices: Mapping | tuple) -> Any:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not a known choice; choose one of: {', '.join(sorted(choices))}")
    return choices[value] if isinstance(choices, Mapping) else value


def _positive(key: str, value: float, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}={value!r} must be {'>= 0' if allow_zero else '> 0'}")
