import os
import time

import pytest

from ttscale.graders.pool import WorkerError, WorkerPool


def _square(x):
    return x * x


def _sleep(seconds):
    time.sleep(seconds)
    return "woke"


def _boom():
    raise RuntimeError("bad")


def _die():
    os._exit(3)


def test_pool_results_timeouts_errors_and_crashes():
    """A call answers, or raises WorkerError saying why: never a default value standing in for an answer."""
    with WorkerPool(size=2, timeout=1.0) as pool:
        assert pool.map(_square, [(i,) for i in range(10)], on_error=lambda e: e) == [i * i for i in range(10)]
        t0 = time.perf_counter()
        with pytest.raises(WorkerError) as timeout:
            pool.call(_sleep, 30)
        assert timeout.value.kind == "timeout" and time.perf_counter() - t0 < 5
        with pytest.raises(WorkerError, match="RuntimeError: bad") as raised:
            pool.call(_boom)
        assert raised.value.kind == "raised"
        with pytest.raises(WorkerError) as died:
            pool.call(_die)
        assert died.value.kind == "died"
        assert pool.call(_square, 7) == 49  # still serving after a kill and a crash
        assert pool.timeouts == 1 and pool.failures == 1
        assert pool.map(_sleep, [(0,), (30,)], on_error=lambda e: e.kind) == ["woke", "timeout"]
