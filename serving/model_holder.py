"""Which model serves: the MLflow `champion` alias, loaded as the native bundle and
swapped in one assignment, so a request that already holds the old model finishes on it
and the next one gets the new model."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable

from churn_assets.ml.registry import CHAMPION, Registry
from serving.predictor import LoadedModel
from serving.settings import ServingSettings

log = logging.getLogger("serving")
CREDENTIALS_IN_URL = re.compile(r"(?<=://)[^/@\s]+@")


def redact(exc: BaseException) -> str:
    """The message without user:password@ parts of URLs (tracking URIs can carry them)."""
    return CREDENTIALS_IN_URL.sub("***@", str(exc))


class ModelHolder:
    def __init__(
        self,
        settings: ServingSettings,
        features_live: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        """features_live(fs_version) tells whether the online store holds vectors for a
        feature-set version; a new champion waits until its features are live."""
        self.settings = settings
        self.features_live = features_live
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self._registry: Registry | None = None
        self._lock = asyncio.Lock()

    def registry(self) -> Registry:
        if self._registry is None:
            m = self.settings.models
            self._registry = Registry(m.tracking_uri, m.model_name, m.experiment, m.artifact_root)
        return self._registry

    def _load(self, known: str | None) -> LoadedModel | None:
        registry = self.registry()
        version = registry.alias(CHAMPION)
        if version is None:
            return None
        if version == known:
            if self.current is not None:  # keep /v1/models' aliases current
                self.current.aliases = list(registry.version(version).aliases)
            return None
        bundle = registry.load_bundle(version, self.settings.models.model_cache)
        aliases = list(registry.version(version).aliases)
        return LoadedModel(version=str(version), bundle=bundle, aliases=aliases)

    async def refresh(self) -> bool:
        """Load the champion when it differs from the serving model (in a worker thread,
        off the event loop); True when a new model now serves."""
        async with self._lock:
            known = self.current.version if self.current else None
            try:
                loaded = await asyncio.to_thread(self._load, known)
            except Exception as exc:  # keep serving the old model; the log says why
                log.warning("champion reload failed: %s: %s", type(exc).__name__, redact(exc))
                # readiness is public: the exception type only, no paths or URIs
                self.last_error = f"loading the champion failed ({type(exc).__name__})"
                return False
            self.last_error = None
            if loaded is None:
                if self.current is None:
                    self.last_error = (
                        f"no {self.settings.models.model_name} version is champion yet"
                    )
                return False
            if (
                self.current
                and self.features_live
                and not await self.features_live(loaded.fs_version)
            ):
                self.last_error = (
                    f"v{loaded.version} waits for its features ({loaded.fs_version}) in Redis"
                )
                log.info(self.last_error)
                return False
            self.current = loaded
            log.info("serving %s v%s", self.settings.models.model_name, loaded.version)
            return True
