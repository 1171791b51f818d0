"""Promotion, refusal and rollback of model versions: MLflow aliases change and the
promotion ledger records why, in one place used by the Dagster asset and the CLI.

The champion history is the ledger replayed: a promotion pushes a version, a rollback
pops one, so repeated rollbacks walk back one champion at a time."""

from __future__ import annotations

from typing import Any

import pandas as pd

from churn_assets.ml.registry import CHALLENGER, CHAMPION, Registry
from warehouse.promotion_ledger import LedgerEntry, PromotionLedger

GATE_STATUS_TAG = "gate_status"  # passed | refused
REFUSAL_TAG = "refusal_reasons"


class PromotionError(RuntimeError):
    """A promotion or rollback that cannot happen; the message says why."""


def champion_history(history: pd.DataFrame) -> list[str]:
    """Champion versions oldest first, as promotions and rollbacks left them."""
    stack: list[str] = []
    for entry in history.itertuples():
        if entry.action == "promote":
            stack.append(str(entry.version_after))
        elif entry.action == "rollback" and stack:
            stack.pop()
    return stack


def refuse(
    registry: Registry,
    ledger: PromotionLedger,
    version: str,
    triggered_by: str,
    reasons: list[str],
    evidence: dict[str, Any],
) -> None:
    """Record that a version failed its gates: it stays registered, tagged with why."""
    registry.tag(version, {GATE_STATUS_TAG: "refused", REFUSAL_TAG: "; ".join(reasons)[:4000]})
    ledger.append(
        LedgerEntry(
            action="refuse",
            model_name=registry.model_name,
            alias=CHAMPION,
            version_before=registry.alias(CHAMPION),
            version_after=None,
            triggered_by=triggered_by,
            reasons=reasons,
            evidence={"version": version, **evidence},
        )
    )


def promote(
    registry: Registry,
    ledger: PromotionLedger,
    version: str,
    triggered_by: str,
    evidence: dict[str, Any],
    make_champion: bool = True,
    force: bool = False,
) -> dict[str, str | None]:
    """Make a version the challenger and (by default) the champion. Only a version that
    passed its quality gates is promoted without force=True: one they refused, or one
    never evaluated, needs it, and the override is on record. The ledger's evidence
    carries the gate status and the metrics recorded on the version."""
    found = registry.version(version)
    status = found.tags.get(GATE_STATUS_TAG)
    if status == "refused":
        problem = (
            f"was refused by its quality gates "
            f"({found.tags.get(REFUSAL_TAG, 'no reasons recorded')})"
        )
    elif status != "passed":
        problem = "has not been through its quality gates (churn_model_evaluation)"
    else:
        problem = ""
    if problem and not force:
        raise PromotionError(f"{registry.model_name} v{version} {problem}; use --force to override")
    reasons = [f"override: v{version} {problem}"] if problem else []
    evidence = {
        **evidence,
        "gate_status": status or "not evaluated",
        "metrics": registry.summary(version)["metrics"],
    }
    before_challenger = registry.alias(CHALLENGER)
    registry.set_alias(CHALLENGER, version)
    ledger.append(
        LedgerEntry("challenger", registry.model_name, CHALLENGER, before_challenger, version,
                    triggered_by, reasons, evidence)
    )  # fmt: skip
    before = registry.alias(CHAMPION)
    if make_champion:
        registry.set_alias(CHAMPION, version)
        ledger.append(
            LedgerEntry("promote", registry.model_name, CHAMPION, before, version, triggered_by,
                        reasons, evidence)
        )  # fmt: skip
    return {
        "champion": registry.alias(CHAMPION),
        "challenger": registry.alias(CHALLENGER),
        "previous_champion": before,
    }


def rollback(
    registry: Registry, ledger: PromotionLedger, triggered_by: str, reason: str = ""
) -> dict[str, str]:
    """Point champion back at the champion before the current one."""
    current = registry.alias(CHAMPION)
    history = champion_history(ledger.history(registry.model_name))
    if current is None:
        raise PromotionError(f"{registry.model_name} has no champion to roll back")
    if not history or history[-1] != current:
        raise PromotionError(
            f"the champion alias (v{current}) was not set through the promotion ledger "
            f"(ledger says {history[-1] if history else 'none'}); fix it with `churn promote`"
        )
    if len(history) < 2:
        raise PromotionError(f"v{current} is the first champion; there is nothing to roll back to")
    previous = history[-2]
    registry.set_alias(CHAMPION, previous)
    ledger.append(
        LedgerEntry(
            action="rollback",
            model_name=registry.model_name,
            alias=CHAMPION,
            version_before=current,
            version_after=previous,
            triggered_by=triggered_by,
            reasons=[reason] if reason else [],
            evidence={"rolled_back": current, "restored": previous},
        )
    )
    return {"champion": previous, "rolled_back": current}


def model_status(registry: Registry) -> dict[str, Any]:
    """Champion and challenger with their key metrics (None when unset)."""
    out: dict[str, Any] = {"model_name": registry.model_name}
    for alias in (CHAMPION, CHALLENGER):
        version = registry.alias(alias)
        out[alias] = registry.summary(version) if version else None
    return out
