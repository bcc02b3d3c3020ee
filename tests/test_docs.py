"""Every ```python block of docs/API.md runs as written (each in a fresh interpreter, in its own folder)."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

API = Path(__file__).resolve().parents[1] / "docs" / "API.md"
BLOCKS = re.findall(r"```python\n(.*?)```", API.read_text(), re.S)


def test_one_example_per_kind_of_user():
    assert len(BLOCKS) == 4  # research code, experiment sweeps, leaderboard scripts, traces


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_api_example_runs(index, tmp_path):
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[index])
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "an example prints what it found"
