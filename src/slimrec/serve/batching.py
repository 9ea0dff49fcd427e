"""Micro-batching: the items of concurrent callers scored by one call of the model.

``/recommend`` queries are scored by one matrix product and one top-k
(``Recommender.answer``), ``/predict`` rows by one forward pass (``Predictor.predict``).

A caller puts its items on a queue with the function that scores them and awaits a future. One
worker task takes the first waiting call, gathers more for at most ``max_delay`` seconds or
until ``max_size`` items, and hands each group of calls with the same ``key`` to their function
on the scoring thread, all items at once. While a batch is scored, new calls queue up, so under
load batches fill without waiting: the delay only bounds the wait of a lone caller.

Each call carries the model it was admitted with (its key names that model); a batch gathered
across a hot reload is scored in one group per model, so a call never finishes on a model it did
not start on. A batch whose scoring fails is retried call by call, so one bad call fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("slimrec.serve")


# Scores a list of items (queries, rows): one answer per item, in order, in a sliceable sequence.
ScoreFunction = Callable[[list], Sequence]


@dataclass
class _Call:
    key: Hashable  # calls with one key are scored together, by one call of ``score``
    score: ScoreFunction
    items: Sequence
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Gathers concurrent calls into batches of at most ``max_size`` items."""

    def __init__(self, executor: Executor, max_size: int, max_delay: float,
                 on_batch: Callable[[int], Any] = lambda size: None) -> None:
        self.executor = executor
        self.max_size = max_size
        self.max_delay = max_delay
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Call] | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, score: ScoreFunction, items: Sequence, key: Hashable) -> Sequence:
        """``score(items)``, computed together with the items of concurrent calls of the same
        ``key`` (one model and the settings ``score`` binds)."""
        loop = asyncio.get_running_loop()
        if self._worker is None or self._worker.done():
            # Created on first use: the queue and the task belong to the serving loop.
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run())
        call = _Call(key, score, items, loop.create_future())
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
        size = len(batch[0].items)
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
            size += len(call.items)
        return batch

    async def _score(self, batch: list[_Call]) -> None:
        groups: dict[Hashable, list[_Call]] = {}
        for call in batch:
            groups.setdefault(call.key, []).append(call)
        loop = asyncio.get_running_loop()
        for calls in groups.values():
            items = [item for call in calls for item in call.items]
            self.on_batch(len(items))
            try:
                answers = await loop.run_in_executor(self.executor, calls[0].score, items)
            except Exception as error:
                if len(calls) == 1:
                    _settle(calls[0].future, error=error)
                else:
                    await self._score_one_by_one(calls)
                continue
            begin = 0
            for call in calls:
                end = begin + len(call.items)
                _settle(call.future, answers[begin:end])
                begin = end

    async def _score_one_by_one(self, calls: list[_Call]) -> None:
        loop = asyncio.get_running_loop()
        for call in calls:
            try:
                answers = await loop.run_in_executor(self.executor, call.score,
                                                     list(call.items))
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
