"""A rerun into a run's folder: refused when the folder holds a run of another config (the runtime keys
aside), and nothing started when every problem of it is done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

RUNTIME_KEYS = ("concurrency", "progress", "grader", "logger", "retry_errors", "trace")  # may change when a run resumes


def finished(problems, out_dir: Path, resolved: dict[str, Any]) -> bool:
    """Whether a rerun into `out_dir` has nothing to generate: every problem is in its results (none to
    retry), and the search has no second pass over the whole run (EAGer's reallocation) left to make."""
    from ttscale.results import pending
    from ttscale.strategies import registry

    search_cls, _ = registry.resolve("search", resolved["strategy"]["search"])
    if hasattr(search_cls, "allocate"):
        return False
    return not pending(problems, out_dir / "results.jsonl", resolved["retry_errors"])


def check_resume(out_dir: Path, resolved: dict[str, Any]) -> None:
    """Refuse to resume into a folder whose earlier run had a different config (runtime keys aside).
    A key the earlier run did not have yet (added to ttscale since) counts as the same when it holds
    its schema default."""
    import yaml

    old_path = out_dir / "config.yaml"
    if not (old_path.exists() and (out_dir / "results.jsonl").exists()):
        return
    old = yaml.safe_load(old_path.read_text()) or {}
    if _same_file((old.get("dataset") or {}).get("source"), (resolved.get("dataset") or {}).get("source")):
        old["dataset"] = {**old["dataset"], "source": resolved["dataset"]["source"]}  # one file, spelled two ways
    diffs = [k for k in sorted(set(old) | set(resolved))
             if k not in RUNTIME_KEYS and not _same(old.get(k), resolved.get(k), _schema_defaults(k))]
    if diffs:
        raise SystemExit(f"ttscale: {out_dir} holds a run with a different config (differs in: "
                         f"{', '.join(diffs)}); choose another hydra.run.dir")


def _same_file(old: Any, new: Any) -> bool:
    """Whether two dataset sources name files of equal content (a relative and an absolute spelling,
    a copy): compared by sha256, not by how the path is written."""
    import hashlib

    if not (isinstance(old, str) and isinstance(new, str)) or old == new:
        return False
    paths = [Path(old).expanduser(), Path(new).expanduser()]
    if not all(p.is_file() for p in paths):
        return False
    digests = []
    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digests.append(digest.hexdigest())
    return digests[0] == digests[1]


def _schema_defaults(group: str) -> dict[str, Any]:
    from dataclasses import MISSING, fields

    from ttscale.config import group_schemas

    schema = group_schemas().get(group)
    if schema is None:
        return {}
    out = {}
    for f in fields(schema):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out


def _same(old: Any, new: Any, defaults: dict[str, Any]) -> bool:
    if old is None and isinstance(new, dict):  # a whole group added since
        old = {}
    if isinstance(old, dict) and isinstance(new, dict):
        return all(old[k] == new.get(k) if k in old else (k in defaults and new[k] == defaults[k])
                   for k in set(old) | set(new)) and all(k in new for k in old)
    return old == new
