#!/usr/bin/env bash
# The whole test suite, as CI runs it: first the tests that start no engine, on two pytest-xdist
# workers (TTSCALE_TEST_WORKERS; most of them leave a core idle: a subprocess starting, a sandbox
# waiting), then the tests on the real vLLM CPU engine, in one process: they share its engines, and
# each engine already keeps both cores busy. Extra arguments go to both pytest runs. Both parts run
# whatever the first's outcome; the exit status is the first failure's.
set -uo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
status=0
"$py" -m pytest -q -m "not integration" -n "${TTSCALE_TEST_WORKERS:-2}" "$@" || status=$?
"$py" -m pytest -q -m integration "$@"
second=$?
[ "$status" -ne 0 ] || status=$second
exit "$status"
