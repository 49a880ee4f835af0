"""Micro-batching: concurrent requests for user recommendations share one model call.

Requests put (user, k) on a queue and await a future. One worker takes everything waiting (up to
`max_batch`), scores it with a single `Service.recommend_many` call in a worker thread (the event
loop keeps accepting requests meanwhile, and those form the next batch), then answers each future.
Nothing waits on a timer: a lone request is scored at once, a burst is scored together.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class MicroBatcher:
    def __init__(self, score: Callable[[list[int], int], list[list[dict]]], max_batch: int = 256):
        self.score, self.max_batch = score, max_batch
        self.calls = 0  # model calls made (for tests and the health page)
        self.requests = 0
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def submit(self, user: int, k: int) -> list[dict]:
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done() or self._loop is not loop:  # first call, or a new loop
            self._queue, self._loop = asyncio.Queue(), loop
            self._worker = loop.create_task(self._run())
        future = loop.create_future()
        self._queue.put_nowait((user, k, future))
        return await future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
            self._worker = None

    async def _run(self) -> None:
        queue = self._queue
        while True:
            batch = [await queue.get()]
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            users = [u for u, _, _ in batch]
            k = max(k for _, k, _ in batch)  # one top-k for the batch; each answer is cut to its own k
            try:
                rows = await asyncio.to_thread(self.score, users, k)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.calls += 1
            self.requests += len(batch)
            for (_, own_k, future), answer in zip(batch, rows):
                if not future.done():
                    future.set_result(answer[:own_k])
