"""A sweep's job folders are named by their overrides (conf/config.yaml): find job `num` of a sweep."""

from __future__ import annotations

from pathlib import Path

import yaml


def job_dir(sweep: Path, num: int) -> Path:
    """The folder of the sweep's job number `num` (Hydra's order of the jobs)."""
    for hydra_yaml in Path(sweep).glob("*/.hydra/hydra.yaml"):
        if (yaml.safe_load(hydra_yaml.read_text()) or {})["hydra"]["job"].get("num") == num:
            return hydra_yaml.parent.parent
    raise FileNotFoundError(f"{sweep}: no job number {num}")

