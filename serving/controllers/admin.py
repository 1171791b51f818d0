"""Admin actions: promote a version to champion and roll back one step, through the same
code as `churn promote` / `churn rollback`, so the promotion ledger records them with
the caller's token subject. Other workers and services hear of it on the events
channel; this worker reloads before answering."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

from litestar import Controller, Request, post
from redis.exceptions import RedisError

from churn_assets.ml.promotion import PromotionError, promote, rollback
from serving.auth import SECURED, Principal, requires
from serving.errors import Conflict, NotFound, ServingError, Unavailable
from serving.model_holder import ModelHolder
from serving.schemas import AdminResult, PromoteRequest, RollbackRequest
from warehouse.connection import Warehouse
from warehouse.online_store import EVENTS_CHANNEL
from warehouse.promotion_ledger import PromotionLedger

log = logging.getLogger("serving")


def actor(principal: Principal) -> str:
    return f"api:{principal.subject}"


async def run_action(action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run a registry + ledger action in a worker thread; its failures become 4xx/503
    answers with the reason, never a 500."""
    try:
        return await asyncio.to_thread(action, *args, **kwargs)
    except LookupError as exc:
        raise NotFound(str(exc)) from exc
    except PromotionError as exc:
        raise Conflict(str(exc)) from exc
    except ServingError:
        raise
    except Exception as exc:  # the registry or the warehouse is unreachable or locked
        log.exception("%s failed", action.__name__)
        raise Unavailable(f"{action.__name__} failed: {type(exc).__name__}") from exc


class AdminController(Controller):
    path = "/v1/admin"
    tags = ["admin"]
    security = SECURED
    opt = requires("admin")

    @post("/promote", status_code=200)
    async def promote(self, request: Request, data: PromoteRequest) -> AdminResult:
        """Make a registered version challenger and champion; a version its quality
        gates refused, or one never evaluated, needs `force: true`, and the override is
        on record."""
        holder: ModelHolder = request.app.state.holder
        ledger = self._ledger(request)
        evidence = {"via": "POST /v1/admin/promote", "reason": data.reason, "force": data.force}
        aliases = await run_action(
            promote, holder.registry(), ledger, data.version, actor(request.user), evidence,
            force=data.force,
        )  # fmt: skip
        result = AdminResult(
            action="promote",
            champion=str(aliases["champion"]),
            previous_champion=aliases["previous_champion"],
            challenger=aliases["challenger"],
        )
        return await self._reload(request, result)

    @post("/rollback", status_code=200)
    async def rollback(self, request: Request, data: RollbackRequest) -> AdminResult:
        """Point champion back at the champion before the current one (one step)."""
        holder: ModelHolder = request.app.state.holder
        result = await run_action(
            rollback, holder.registry(), self._ledger(request), actor(request.user), data.reason
        )
        return await self._reload(
            request,
            AdminResult(
                action="rollback",
                champion=result["champion"],
                previous_champion=result["rolled_back"],
            ),
        )

    @staticmethod
    def _ledger(request: Request) -> PromotionLedger:
        return PromotionLedger(Warehouse(request.app.state.settings.storage))

    @staticmethod
    async def _reload(request: Request, result: AdminResult) -> AdminResult:
        """Tell every service (this one's reloader too) and load the new champion here
        before answering, so the response says what this worker now serves."""
        state = request.app.state
        try:
            await state.events.publish(
                EVENTS_CHANNEL, json.dumps({"event": "champion", "version": result.champion})
            )
        except (RedisError, OSError) as exc:  # other services fall back to their poll
            log.warning("champion event not published: %s", type(exc).__name__)
        holder: ModelHolder = state.holder
        await holder.refresh()
        serving = holder.current.version if holder.current else None
        result.serving = serving
        if serving != result.champion:
            result.waiting = holder.last_error or "the new champion is loading"
        return result
