"""GET /v1/models: the loaded model, its aliases and feature set, and the online sync."""

from __future__ import annotations

from litestar import Controller, Request, get

from serving.auth import SECURED, requires
from serving.schemas import ModelInfo, ModelsResponse, OnlineInfo
from serving.scoring import Scorer, iso_date


class ModelsController(Controller):
    path = "/v1/models"
    tags = ["models"]
    security = SECURED

    @get("/", opt=requires("analyst"))
    async def models(self, request: Request) -> ModelsResponse:
        scorer: Scorer = request.app.state.scorer
        await scorer.touch(request.user)
        model = scorer.model()
        info = await request.app.state.reader.info(model.fs_version)
        return ModelsResponse(
            models=[
                ModelInfo(
                    version=model.version,
                    aliases=model.aliases,
                    serving=True,
                    loaded_at=iso_date(model.loaded_at),
                    feature_set_version=model.fs_version,
                    features=list(model.names),
                    threshold=model.threshold,
                )
            ],
            online=OnlineInfo(
                feature_set_version=model.fs_version,
                live_sync=_text(info.get("sync_id")),
                customers=int(info["customers"]) if "customers" in info else None,
                features_as_of=_text(info.get("features_as_of")),
            ),
        )


def _text(value: object) -> str | None:
    return None if value is None else str(value)
