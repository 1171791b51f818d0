"""The reloader stops even when a Redis read swallows its cancellation (redis-py can
turn one into a connection error or an empty read): a service that never finished
stopping hung a test run's event loop at shutdown."""

import asyncio
from types import SimpleNamespace

from serving.reloader import Reloader


class SwallowingPubSub:
    """A pub/sub connection whose read survives cancellation by returning nothing."""

    async def subscribe(self, *_channels: str) -> None:
        return None

    async def get_message(self, timeout: float) -> None:
        try:
            await asyncio.sleep(timeout)
        except asyncio.CancelledError:
            return None

    async def aclose(self) -> None:
        return None


async def refresh() -> None:
    return None


def test_stop_ends_both_loops_even_if_a_read_swallows_the_cancellation() -> None:
    async def run() -> list[bool]:
        client = SimpleNamespace(pubsub=lambda **_: SwallowingPubSub())
        reloader = Reloader(client, SimpleNamespace(refresh=refresh), poll_seconds=0.01)  # type: ignore[arg-type]
        reloader.start()
        await asyncio.sleep(0.05)
        await reloader.stop()
        return [task.done() for task in reloader._tasks]

    # not asyncio.run: closing the loop waits for every task, and a loop that never
    # ended would hang here instead of failing
    loop = asyncio.new_event_loop()
    states = loop.run_until_complete(run())
    if all(states):
        loop.close()
    assert states == [True, True]
