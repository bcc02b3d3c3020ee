"""ttscale works from a wheel install, not only an editable one: conf/ and fixtures ship inside it."""

import subprocess
import sys
import zipfile

import pytest


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    from pathlib import Path

    out = tmp_path_factory.mktemp("dist")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(root)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(proc.stderr[-2000:])
    (path,) = out.glob("ttscale-*.whl")
    return path


def test_wheel_contains_configs_and_fixture(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("ttscale/conf/config.yaml", "ttscale/conf/model/smollm2-135m.yaml",
                     "ttscale/conf/dataset/prompt/boxed_cot.yaml", "ttscale/data/fixtures/gsm8k_test_30.jsonl"):
        assert required in names


def test_cli_runs_from_the_installed_wheel(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import ttscale.cli as c, ttscale.config as f; "
            "assert str(f.conf_dir()).startswith(sys.argv[1]), f.conf_dir(); "
            "assert c.check_overrides(['strategy=best_of_n', 'dataset=math500']) is None; "
            "print(c.check_overrides(['strategy.nn=1']))")
    proc = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "unknown config key 'strategy.nn'" in proc.stdout
