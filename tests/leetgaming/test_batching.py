"""Group commit: alone when idle, together under load, one bad item fails only itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from leetgaming.batching import Batcher, Done


class Recorder:
    def __init__(self, poison: int | None = None) -> None:
        self.batches: list[list[int]] = []
        self.after: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.poison = poison

    async def run(self, items: Sequence[int]) -> Done[int]:
        self.batches.append(list(items))
        await self.release.wait()  # the "transaction"
        if self.poison in items:
            raise ValueError(f"bad item {self.poison}")

        async def then() -> None:
            self.after.append(list(items))

        return [n * 10 for n in items], then


async def test_an_item_alone_goes_at_once_and_those_arriving_meanwhile_go_together() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run, items_per_batch_max=3)
    assert await batcher.submit(1) == 10
    recorder.release.clear()
    first = asyncio.create_task(batcher.submit(2))
    await asyncio.sleep(0)  # its batch is under way, waiting for the "commit"
    rest = [asyncio.create_task(batcher.submit(n)) for n in range(3, 8)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await first == 20
    assert [await task for task in rest] == [30, 40, 50, 60, 70]
    # at most three a batch, in the order they came; each batch's follow-up ran
    assert recorder.batches == [[1], [2], [3, 4, 5], [6, 7]]
    assert recorder.after == recorder.batches


async def test_a_failed_batch_is_done_again_one_by_one() -> None:
    recorder = Recorder(poison=4)
    batcher = Batcher(recorder.run, items_per_batch_max=10)
    recorder.release.clear()
    tasks = [asyncio.create_task(batcher.submit(n)) for n in range(2, 6)]
    await asyncio.sleep(0)
    recorder.release.set()
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    assert outcomes[0] == 20 and outcomes[1] == 30 and outcomes[3] == 50
    assert isinstance(outcomes[2], ValueError)  # only the bad item's caller hears of it
    assert recorder.batches == [[2, 3, 4, 5], [2], [3], [4], [5]]
    assert recorder.after == [[2], [3], [5]]  # nothing of the failed batch was followed up
    await batcher.stop()


async def test_a_caller_that_gives_up_does_not_take_its_item_out() -> None:
    recorder = Recorder()
    batcher = Batcher(recorder.run, items_per_batch_max=10)
    recorder.release.clear()
    task = asyncio.create_task(batcher.submit(9))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    recorder.release.set()
    await batcher.stop()
    assert recorder.after == [[9]]  # done all the same (a result the server stopped waiting for)


def test_a_batch_holds_at_least_one_item() -> None:
    with pytest.raises(ValueError):
        Batcher(Recorder().run, items_per_batch_max=0)
