"""The async runner of a race: under asyncio a loop timer starts the hedges of a
first copy the caller sends itself; under trio each copy is a task of one task
group (see :mod:`resilience.retry.racing`)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from resilience.retry.closing import aclose_quietly
from resilience.retry.racing import Copies, Race

if TYPE_CHECKING:
    import asyncio

__all__ = ["race_async"]

_log = logging.getLogger(__name__)


async def race_async(
    hedge_race: Race,
    copies: Copies,
) -> Any:
    """Run ``hedge_race`` from an async shell; return the answer that ended it
    (a response, or the exception a copy raised).

    Under asyncio, copy 0 is sent by the caller itself and hedges are started
    by a timer of the loop (:func:`_race_on_asyncio`): a race that needs no
    hedge costs a timer and a cancel scope, not a task. Under any other anyio
    runtime (trio), each copy is a task of one task group
    (:func:`_race_in_task_group`).
    """
    import asyncio  # not at import: asyncio is slow to import, and sync users never need it

    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio
        return await _race_in_task_group(hedge_race, copies)
    return await _race_on_asyncio(loop, hedge_race, copies)


async def _race_on_asyncio(
    loop: asyncio.AbstractEventLoop,
    hedge_race: Race,
    copies: Copies,
) -> Any:
    """The race under asyncio: the caller sends copy 0 inside a cancel scope;
    a timer of the loop starts each hedge as a task when it is due. The copy
    whose answer ends the race (copy 0, or a hedge) is the outcome; a hedge
    that ends it cancels the caller's scope, which cancels copy 0 (or the
    caller's wait for the hedges, when copy 0 answered unusably first). The
    hedges that did not win are cancelled, and awaited, when the race ends."""
    request, send, discard, copy_of, budget = copies
    import asyncio

    import anyio

    clock = hedge_race.call.core.monotonic
    scope = anyio.CancelScope()
    hedges: list[asyncio.Task[None]] = []
    ended: list[Any] = []  # the answer of the hedge that ended the race
    timer: asyncio.TimerHandle | None = None

    async def run(index: int, req: Any, seconds: float | None) -> None:
        try:
            result: Any = await send(req, seconds)
        except Exception as exc:
            result = exc
        if not hedge_race.over and hedge_race.finished(index, result, clock()):
            ended.append(result)
            scope.cancel()
        elif not isinstance(result, BaseException):
            await aclose_quietly(discard, result)

    def fire() -> None:
        nonlocal timer
        timer = None
        if hedge_race.over:
            return
        try:
            now = clock()
            copy = hedge_race.timed_out(now)
            if copy is not None:
                hedges.append(loop.create_task(run(copy.index, copy_of(request), budget(now))))
            wait = hedge_race.due(clock())
        except Exception:  # a timer's error has nowhere to go: no more hedges
            _log.warning("sending a hedged copy failed", exc_info=True)
            return
        if wait is not None:
            timer = loop.call_later(wait, fire)

    first = hedge_race.due(clock())
    if first is not None:
        timer = loop.call_later(first, fire)
    outcome: Any = None
    try:
        with scope:
            try:
                result: Any = await send(request, budget(hedge_race.copies[0].sent))
            except Exception as exc:
                result = exc
            if hedge_race.over:  # a hedge won as copy 0 answered
                if not isinstance(result, BaseException):
                    await aclose_quietly(discard, result)
            elif hedge_race.finished(0, result, clock()):
                outcome = result
            else:  # unusable, hedges in flight: one of them ends the race
                if not isinstance(result, BaseException):
                    await aclose_quietly(discard, result)
                await anyio.sleep_forever()
        if ended:
            outcome = ended[0]
        return outcome
    finally:
        hedge_race.over = True
        if timer is not None:
            timer.cancel()
        pending = [task for task in hedges if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            with anyio.CancelScope(shield=True):
                await asyncio.gather(*pending, return_exceptions=True)


async def _race_in_task_group(
    hedge_race: Race,
    copies: Copies,
) -> Any:
    """The race under any anyio runtime: each copy is a task of one task
    group; the copies that did not win are cancelled when the race ends, and
    any answer they left behind is closed."""
    request, send, discard, copy_of, budget = copies
    import anyio

    clock = hedge_race.call.core.monotonic
    outcome: Any = None
    # Answers as they come, and the event that wakes the race for them (an
    # event and a list cost half what a memory stream does per call).
    box: list[tuple[int, Any]] = []
    signal = [anyio.Event()]

    async def run(index: int, req: Any, seconds: float | None) -> None:
        try:
            result: Any = await send(req, seconds)
        except Exception as exc:
            result = exc
        box.append((index, result))
        signal[0].set()

    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(run, 0, request, budget(hedge_race.copies[0].sent))
            while True:
                if not box:
                    wait = hedge_race.due(clock())
                    if wait is None:
                        await signal[0].wait()
                    else:
                        with anyio.move_on_after(wait):
                            await signal[0].wait()
                    if not box:
                        now = clock()
                        copy = hedge_race.timed_out(now)
                        if copy is not None:
                            tasks.start_soon(run, copy.index, copy_of(request), budget(now))
                        continue
                index, result = box.pop(0)
                if not box:
                    signal[0] = anyio.Event()  # an event cannot be cleared
                if hedge_race.finished(index, result, clock()):
                    outcome = result
                    tasks.cancel_scope.cancel()
                    break
                if not isinstance(result, BaseException):
                    await aclose_quietly(discard, result)
        return outcome
    finally:
        hedge_race.over = True
        for _, late in box:  # answers delivered but not taken
            if late is not outcome and not isinstance(late, BaseException):
                await aclose_quietly(discard, late)
