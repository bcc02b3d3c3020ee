"""Routing and retries over OpenAI-compatible endpoints (the openai backend's; see its module doc).

Routing: the calls of one problem (`key`, base.AFFINITY) go to one endpoint chosen by rendezvous
hashing over the endpoints in rotation; a call with no key, or whose endpoint is at its
`max_concurrency`, goes to the endpoint with the fewest outstanding requests. Faults (`_Retry`) are
retried with exponential backoff and jitter, on another endpoint when one is in rotation; a failing
endpoint leaves the rotation for `cooldown` seconds. Every method runs on the backend's event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ttscale.backends.base import BackendUnavailable
from ttscale.backends.openai_wire import _Retry

RETRY_DEFAULTS = {
    "max_attempts": 6,              # tries of one call, over all endpoints
    "backoff": 0.5,                 # seconds before the 2nd try; doubled each try, with +-50% jitter
    "backoff_max": 8.0,
    "deadline": 1800.0,             # seconds one call may take, retries included
    "cooldown": 15.0,               # seconds a failing endpoint stays out of rotation
    "failures_before_cooldown": 3,  # failures in a row (connection refused: at once)
}


@dataclass
class Endpoint:
    url: str
    max_concurrency: int
    outstanding: int = 0
    out_until: float = 0.0    # out of rotation until this time (loop clock)
    failures_in_a_row: int = 0
    requests: int = 0
    failures: int = 0
    slots: asyncio.Semaphore | None = field(default=None, repr=False)

    def weight(self, key: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{key}\x00{self.url}".encode()).digest()[:8], "big")


def parse_endpoints(spec: Any, max_concurrency: int) -> list[Endpoint]:
    items = [spec] if isinstance(spec, str) else list(spec or [])
    if not items:
        raise ValueError("backend.endpoints is empty: give one or more base URLs, e.g. http://127.0.0.1:8000/v1")
    out = []
    for item in items:
        if isinstance(item, str):
            url, limit = item, max_concurrency
        elif isinstance(item, Mapping) and "url" in item:
            unknown = sorted(set(item) - {"url", "max_concurrency"})
            if unknown:
                raise ValueError(f"backend.endpoints entry {dict(item)}: unknown keys {unknown}; "
                                 "an entry is a URL or {url, max_concurrency}")
            url, limit = item["url"], int(item.get("max_concurrency", max_concurrency))
        else:
            raise ValueError(f"backend.endpoints entry {item!r}: give a URL or {{url, max_concurrency}}")
        if not str(url).startswith(("http://", "https://")):
            raise ValueError(f"backend.endpoints entry {url!r} is not an http(s) URL")
        if limit < 1:
            raise ValueError(f"backend.endpoints {url}: max_concurrency={limit} must be >= 1")
        out.append(Endpoint(str(url).rstrip("/"), limit))
    if len({e.url for e in out}) != len(out):
        raise ValueError(f"backend.endpoints repeats a URL: {[e.url for e in out]}")
    return out


class Router:
    """The endpoints, which one a call goes to, and its retries (`call`)."""

    def __init__(self, endpoints: Any, max_concurrency: int, retry: Mapping[str, Any] | None = None):
        unknown = sorted(set(retry or {}) - set(RETRY_DEFAULTS))
        if unknown:
            raise ValueError(f"backend.retry: unknown keys {unknown}; choose from: {', '.join(RETRY_DEFAULTS)}")
        self.retry = {**RETRY_DEFAULTS, **(retry or {})}
        self.endpoints = parse_endpoints(endpoints, max_concurrency)
        self._rng = random.Random(0)  # jitter only

    def start(self) -> None:
        """On the loop that will run the calls: each endpoint's concurrency slots."""
        for e in self.endpoints:
            e.slots = asyncio.Semaphore(e.max_concurrency)

    def stats(self, now: float) -> list[dict[str, Any]]:
        """Per endpoint: requests sent, failed tries, and whether it is out of rotation at `now` (loop clock)."""
        return [{"url": e.url, "requests": e.requests, "failures": e.failures, "out": e.out_until > now}
                for e in self.endpoints]

    def _pick(self, key: str | None, avoid: set[str]) -> Endpoint | None:
        now = asyncio.get_running_loop().time()
        live = [e for e in self.endpoints if e.out_until <= now]
        fresh = [e for e in live if e.url not in avoid] or live
        if not fresh:
            return None
        if key is not None:
            home = max(fresh, key=lambda e: e.weight(key))
            if home.outstanding < home.max_concurrency:
                return home
        return min(fresh, key=lambda e: (e.outstanding / e.max_concurrency, e.outstanding))

    def _failed(self, endpoint: Endpoint, fault: _Retry) -> None:
        endpoint.failures += 1
        endpoint.failures_in_a_row += 1
        now = asyncio.get_running_loop().time()
        if fault.retry_after is not None:
            endpoint.out_until = max(endpoint.out_until, now + fault.retry_after)
        elif fault.down or endpoint.failures_in_a_row >= self.retry["failures_before_cooldown"]:
            endpoint.out_until = now + self.retry["cooldown"]

    async def call(self, attempt, key: str | None, what: str):
        """`attempt(endpoint)` until it answers: retried on _Retry faults, failing over to other
        endpoints, within max_attempts and the deadline (see the module doc). The deadline counts from
        when the call first holds a slot of an endpoint: waiting behind other requests is not a fault
        (that wait is bounded by theirs), and a deadline that passes is not the endpoint's failure."""
        loop = asyncio.get_running_loop()
        outer = loop.time() + self.retry["deadline"]  # bounds waiting for an endpoint to come back
        deadline = None
        faults: list[str] = []
        avoid: set[str] = set()
        for number in range(self.retry["max_attempts"]):
            endpoint = self._pick(key, avoid)
            while endpoint is None:  # every endpoint is cooling down: wait for the first back
                wait = min(e.out_until for e in self.endpoints) - loop.time()
                if loop.time() + wait > (deadline or outer):
                    raise BackendUnavailable(f"{what}: every endpoint is out of rotation past the call's deadline; "
                                             f"faults: {'; '.join(faults[-3:]) or 'none'}")
                await asyncio.sleep(max(wait, 0.0))
                endpoint = self._pick(key, avoid)
            endpoint.outstanding += 1
            try:
                async with endpoint.slots:
                    deadline = deadline or loop.time() + self.retry["deadline"]
                    if loop.time() >= deadline:
                        raise asyncio.TimeoutError
                    endpoint.requests += 1
                    result = await asyncio.wait_for(attempt(endpoint), deadline - loop.time())
                endpoint.failures_in_a_row = 0
                return result
            except _Retry as fault:
                self._failed(endpoint, fault)
                faults.append(f"{endpoint.url}: {fault}")
            except asyncio.TimeoutError:
                faults.append(f"{endpoint.url}: the call's deadline ({self.retry['deadline']:g} s) passed")
                break
            finally:
                endpoint.outstanding -= 1
            avoid.add(endpoint.url)
            if number + 1 == self.retry["max_attempts"] or loop.time() >= deadline:
                break
            if self._pick(key, avoid) is None or all(e.url in avoid for e in self.endpoints):
                delay = min(self.retry["backoff"] * 2 ** number, self.retry["backoff_max"])
                delay *= 1 + self._rng.uniform(-0.5, 0.5)
                await asyncio.sleep(max(0.0, min(delay, deadline - loop.time())))
                if all(e.url in avoid for e in self.endpoints):
                    avoid.clear()
        raise BackendUnavailable(f"{what}: no endpoint answered after {len(faults)} tries; last faults: "
                                 + "; ".join(faults[-3:]))
