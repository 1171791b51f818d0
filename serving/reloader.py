"""Hot reload: the promotion asset (and `churn promote` / `churn rollback`) publish on
the Redis events channel; the service reloads the champion on such an event, and polls
the registry as a fallback when an event is missed or Redis pub/sub is down."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from serving.model_holder import ModelHolder
from warehouse.online_store import EVENTS_CHANNEL

log = logging.getLogger("serving")


class Reloader:
    def __init__(self, client: aioredis.Redis, holder: ModelHolder, poll_seconds: float) -> None:
        self.client = client
        self.holder = holder
        self.poll_seconds = poll_seconds
        self._tasks: list[asyncio.Task] = []
        # redis-py may turn a cancellation inside a read into a connection error, which
        # the loop below survives by design: the flag ends it whatever the read raised
        self._stopping = False

    async def listen(self) -> None:
        while not self._stopping:
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(EVENTS_CHANNEL)
                while not self._stopping:
                    # a bounded wait rather than listen(): cancellation at shutdown
                    # then never meets a read in progress
                    if await pubsub.get_message(timeout=1.0):
                        await self.holder.refresh()
            except (RedisError, OSError) as exc:
                if self._stopping:
                    return
                log.info("events channel unavailable (%s); polling continues", exc)
                await asyncio.sleep(self.poll_seconds)
            finally:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(pubsub.aclose(), timeout=1)

    async def poll(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self.poll_seconds)
            await self.holder.refresh()

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self.listen()), asyncio.create_task(self.poll())]

    async def stop(self) -> None:
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        # a reload running in a worker thread cannot be interrupted; do not wait for it
        await asyncio.wait(self._tasks, timeout=2)
