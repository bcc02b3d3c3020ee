import os
import time

from ttscale.graders.pool import WorkerPool


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
    with WorkerPool(size=2, timeout=1.0) as pool:
        assert pool.map(_square, [(i,) for i in range(10)]) == [i * i for i in range(10)]
        t0 = time.perf_counter()
        assert pool.call(_sleep, 30, default="timeout") == "timeout"
        assert time.perf_counter() - t0 < 5
        assert pool.call(_boom, default="err") == "err"
        assert pool.call(_die, default="dead") == "dead"
        assert pool.call(_square, 7) == 49  # still serving after a kill and a crash
        assert pool.timeouts == 2
