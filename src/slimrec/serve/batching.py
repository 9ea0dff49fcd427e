"""Micro-batching: the queries of concurrent callers scored by one matrix product and one top-k.

A caller puts its queries on a queue and awaits a future. One worker task takes the first
waiting call, gathers more for at most ``max_delay`` seconds or until ``max_size`` queries, and
hands the batch to ``Recommender.answer`` on the scoring thread. While a batch is scored, new
calls queue up, so under load batches fill without waiting: the delay only bounds the wait of a
lone caller.

Each call carries the model it was admitted with; a batch gathered across a hot reload is
scored in one group per model, so a call never finishes on a model it did not start on.
A batch whose scoring fails is retried call by call, so one bad call fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from slimrec.serve.recommender import Fallback, Query, Recommendation, Recommender

log = logging.getLogger("slimrec.serve")


@dataclass
class _Call:
    recommender: Recommender
    queries: Sequence[Query]
    fallback: Fallback
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Gathers ``/recommend`` calls into batches of at most ``max_size`` queries."""

    def __init__(self, executor: Executor, max_size: int, max_delay: float,
                 on_batch: Callable[[int], Any] = lambda size: None) -> None:
        self.executor = executor
        self.max_size = max_size
        self.max_delay = max_delay
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Call] | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, recommender: Recommender, queries: Sequence[Query],
                     fallback: Fallback) -> list[Recommendation]:
        """The answers to ``queries``, scored together with those of concurrent callers."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            # Created on first use: the queue and the task belong to the serving loop.
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run())
        call = _Call(recommender, queries, fallback, loop.create_future())
        self._queue.put_nowait(call)
        return await call.future

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def _run(self) -> None:
        while True:
            batch = await self._gather()
            try:
                await self._score(batch)
            except Exception as error:  # never let the worker die: fail the batch's calls
                log.exception("scoring a batch failed")
                for call in batch:
                    _settle(call.future, error=error)

    async def _gather(self) -> list[_Call]:
        queue = self._queue
        batch = [await queue.get()]
        size = len(batch[0].queries)
        deadline = asyncio.get_running_loop().time() + self.max_delay
        while size < self.max_size:
            if queue.empty():
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    call = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                call = queue.get_nowait()
            batch.append(call)
            size += len(call.queries)
        return batch

    async def _score(self, batch: list[_Call]) -> None:
        groups: dict[tuple[int, str], list[_Call]] = {}
        for call in batch:
            groups.setdefault((id(call.recommender), call.fallback), []).append(call)
        loop = asyncio.get_running_loop()
        for calls in groups.values():
            queries = [query for call in calls for query in call.queries]
            self.on_batch(len(queries))
            try:
                answers = await loop.run_in_executor(
                    self.executor, calls[0].recommender.answer, queries, calls[0].fallback)
            except Exception as error:
                if len(calls) == 1:
                    _settle(calls[0].future, error=error)
                else:
                    await self._score_one_by_one(calls)
                continue
            begin = 0
            for call in calls:
                end = begin + len(call.queries)
                _settle(call.future, answers[begin:end])
                begin = end

    async def _score_one_by_one(self, calls: list[_Call]) -> None:
        loop = asyncio.get_running_loop()
        for call in calls:
            try:
                answers = await loop.run_in_executor(
                    self.executor, call.recommender.answer, call.queries, call.fallback)
            except Exception as error:
                _settle(call.future, error=error)
            else:
                _settle(call.future, answers)


def _settle(future: asyncio.Future, result: Any = None, error: Exception | None = None
            ) -> None:
    """Give a call its answer or error, unless its caller has gone (cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
