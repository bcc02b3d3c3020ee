"""Every ```python block of the README and of the docs it links (docs/*.md; docs/API.md has its own
test) runs as written (each in a fresh interpreter); every config in conf/ is in the tables."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = [README] + sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "API.md")
BLOCKS = [b for doc in DOCS for b in re.findall(r"```python\n(.*?)```", doc.read_text(), re.S)]


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize(
    "index",
    [pytest.param(i, marks=[pytest.mark.integration] if "make_backend" in b else []) for i, b in enumerate(BLOCKS)],
)
def test_readme_block_runs(index, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index])
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_the_readmes_test_command_is_what_ci_runs():
    ci = (README.parent / ".ci" / "run").read_text()
    command = "bash scripts/install-cpu.sh --test && bash scripts/test.sh"
    assert command in README.read_text()
    assert "bash scripts/install-cpu.sh --test\n" in ci and ci.rstrip().endswith("bash scripts/test.sh")


def configs(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml") if not p.stem.endswith("_schema"))


@pytest.mark.parametrize("group, where", [("strategy", ["README.md", "docs/STRATEGIES.md"]),
                                          ("verifier", ["docs/VERIFIERS.md"]),
                                          ("backend", ["docs/BACKENDS.md"]),
                                          ("dataset", ["README.md"]),
                                          ("model", ["README.md"])])
def test_every_config_of_conf_is_in_its_table(group, where):
    names = configs(group)
    assert names
    for doc in where:
        text = (ROOT / doc).read_text()
        missing = [n for n in names if f"`{n}`" not in text]
        assert not missing, f"{doc} lacks {group} configs: {missing}"


def test_every_relative_link_of_the_readme_and_docs_is_there():
    broken = []
    for doc in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if not link.startswith(("http://", "https://", "../shared/")) and not (doc.parent / link).exists():
                broken.append(f"{doc.name}: {link}")
    assert not broken, broken
