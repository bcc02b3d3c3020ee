"""Experiment trackers. `logger=wandb`: one wandb run per ttscale run with the resolved config, the
summary metrics, a per-problem table and the plots (the scaling curve when n > 1)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ttscale.types import Result

LOGGERS = ("none", "wandb")


def _scalars(summary: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in summary.items():
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, (int, float)) and not (isinstance(value, float) and math.isinf(value)):
            out[key] = value
        elif isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, float) for v in value):
            out[f"{key}_low"], out[f"{key}_high"] = value
        elif isinstance(value, dict):
            out.update({f"{key}/{k}": v for k, v in value.items() if isinstance(v, (int, float))})
    return out


def log_run(logger_cfg: Mapping[str, Any], config: Mapping[str, Any], summary: Mapping[str, Any],
            results: Sequence[Result], out_dir: Path, group: str | None = None) -> str | None:
    """Log a finished run; returns the tracker's run folder (None for logger=none)."""
    name = logger_cfg.get("name", "none")
    if name not in LOGGERS:
        raise ValueError(f"logger.name={name!r}; choose one of: {', '.join(LOGGERS)}")
    if name == "none":
        return None
    import wandb

    from ttscale.results.curves import scaling_curve
    from ttscale.analysis.plots import plot_curve

    run = wandb.init(project=logger_cfg.get("project") or "ttscale", entity=logger_cfg.get("entity"),
                     mode=logger_cfg.get("mode"), group=logger_cfg.get("group") or group,
                     tags=list(logger_cfg.get("tags") or []), dir=str(logger_cfg.get("dir") or out_dir),
                     name=f"{summary.get('strategy')}-n{summary.get('n')}-{out_dir.name}",
                     config=dict(config), reinit="finish_previous")
    try:
        run.summary.update(_scalars(summary))
        columns = ["problem_id", "correct", "answer", "reference", "candidates", "covered", "completion_tokens",
                   "prompt_tokens", "verifier_tokens", "wall_seconds", "error"]
        table = wandb.Table(columns=columns)
        for r in results:
            table.add_data(r.problem_id, r.correct, None if r.answer is None else str(r.answer)[:2000], r.reference,
                           len(r.candidates), any(c.correct for c in r.candidates), r.usage.completion_tokens,
                           r.usage.prompt_tokens, r.usage.verifier_tokens, r.usage.wall_seconds, r.error)
        log: dict[str, Any] = {"problems": table}
        rows = scaling_curve(results)
        if len(rows) > 1:
            log["scaling_curve"] = wandb.Image(str(plot_curve(rows, out_dir / "wandb_curve.png",
                                                              title=f"{summary.get('strategy')} (n = {summary.get('n')}) · "
                                                                    f"{summary.get('model')} · {summary.get('dataset')}")))
        run.log(log)
        return str(Path(run.dir).parent)
    finally:
        run.finish()
