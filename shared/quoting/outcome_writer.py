"""Group commit for quote outcomes: the outcomes that are ready together share one statement.

Outcomes come in bursts: a worker's ten quotes of an application come back from insurers
with similar latencies, and the ten jobs of an application nobody picked up expire
together into the dead-jobs queue. Each handler hands its outcome here and waits; the
outcomes handed in while the previous statement was running go together in the next
(``shared.quoting.outcomes.finalize_quotes``). Nothing waits on a timer: alone, an outcome is
written at once; under load the batches form by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib

from shared.quoting.outcomes import FinalizeRequest, FinalizeResult, finalize_quotes

MAX_BATCH = 64


class OutcomeWriter:
    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self._max_batch = max_batch
        self._waiting: list[tuple[FinalizeRequest, asyncio.Future[FinalizeResult]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def finalize(self, request: FinalizeRequest) -> FinalizeResult:
        """The result of this request's statement; raises what the statement raised."""
        future: asyncio.Future[FinalizeResult] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_while_waiting(), name="outcome-writer")
        return await future

    async def close(self, timeout_s: float = 5.0) -> None:
        """Let the statement in flight finish (its outcomes are worth keeping), within a bound."""
        if self._writer is not None and not self._writer.done():
            _, still_running = await asyncio.wait({self._writer}, timeout=timeout_s)
            for task in still_running:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _write_while_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self._max_batch], self._waiting[self._max_batch :]
            try:
                results = await finalize_quotes([request for request, _ in batch])
            except Exception as exc:  # every handler of the batch hands its job back
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except asyncio.CancelledError:
                for _, future in batch:
                    future.cancel()
                raise
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():  # its handler may have been cancelled meanwhile
                    future.set_result(result)
