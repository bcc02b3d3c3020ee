"""A private event loop on a thread of its own, for backends that hold loop-bound state (an engine,
an HTTP client and its semaphores): callers await it from any event loop (several `asyncio.run`
calls in a sweep, a notebook's loop) and it outlives each of them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")
Put = Callable[[Any], bool]


class LoopThread:
    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def submit(self, coro: Awaitable[T]):
        """Run `coro` on the private loop: a concurrent.futures.Future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    async def call(self, coro: Awaitable[T]) -> T:
        """Await `coro` on the private loop from the caller's loop; cancelling this await cancels it there."""
        return await asyncio.wrap_future(self.submit(coro))

    async def relay(self, produce: Callable[[Put], Awaitable[None]], last: Callable[[Any], bool]) -> AsyncIterator[Any]:
        """Items that `produce(put)` puts, on the private loop, handed over to this loop as they come; an
        exception put is raised here. Ends after an item for which `last(item)` is true. Closing this
        iterator (or cancelling its reader) cancels the producer."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def put(item) -> bool:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
                return True
            except RuntimeError:  # the reader's loop is closed: nobody reads this any more
                return False

        future = self.submit(produce(put))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if last(item):
                    return
        finally:
            if not future.done():
                future.cancel()

    def stop(self, timeout: float = 10.0) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=timeout)


async def gather_or_cancel(coros):
    """The results of coroutines run at once; when one fails, the others are cancelled (their requests
    closed, so the server stops them) before the failure is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
