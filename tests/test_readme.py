"""Every ```python block of the README runs as written (each in a fresh interpreter)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


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
