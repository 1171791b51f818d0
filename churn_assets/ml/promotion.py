"""Promotion, refusal and rollback of model versions: MLflow aliases change and the
promotion ledger records why, in one place used by the Dagster asset, the CLI and the
admin API.

Ledger first: every alias change writes its intent to the ledger, then moves the
alias, then appends the confirmation, all under the ledger's lock. A run that dies
between two steps leaves a pending intent, which the next promotion, rollback or
`churn status` resolves from where the alias really points (`repair`).

The champion history is the ledger replayed: a promotion pushes a version, a rollback
pops one, so repeated rollbacks walk back one champion at a time."""

from __future__ import annotations

from typing import Any

import pandas as pd

from churn_assets.ml.registry import CHALLENGER, CHAMPION, Registry
from warehouse.crash_points import crash_point
from warehouse.promotion_ledger import ABANDONED, CONFIRMED, LedgerEntry, PromotionLedger

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


def change_alias(registry: Registry, ledger: PromotionLedger, entry: LedgerEntry) -> None:
    """Point entry.alias at entry.version_after, ledger first: the intent, the alias,
    the confirmation. The caller holds `ledger.exclusive()`."""
    intent_id = ledger.intend(entry)
    crash_point(f"{entry.action}:intent")
    registry.set_alias(entry.alias, str(entry.version_after))
    crash_point(f"{entry.action}:alias")
    ledger.resolve(intent_id, CONFIRMED, entry.triggered_by, {})
    crash_point(f"{entry.action}:confirm")


def repair(registry: Registry, ledger: PromotionLedger, triggered_by: str) -> list[dict[str, Any]]:
    """Resolve the intents a dead run left pending, from where each alias points now:
    at the intended version, the change happened and is confirmed; anywhere else it
    did not and is abandoned. An abandoned change is never completed here: the run
    that asked for it failed in front of its caller, and a repair (from `churn status`
    too, perhaps hours later) must not change what is served; promoting again is one
    command. The caller holds `ledger.exclusive()`. Returns what was resolved."""
    resolved = []
    for intent in ledger.pending(registry.model_name).to_dict("records"):
        found = registry.alias(str(intent["alias"]))
        after = intent["version_after"]
        intended = None if after is None or pd.isna(after) else str(after)
        state = CONFIRMED if found == intended else ABANDONED
        evidence = {"repair": True, "alias_found": found}
        ledger.resolve(int(intent["entry_id"]), state, triggered_by, evidence)
        resolved.append(
            {
                "intent_id": int(intent["entry_id"]),
                "action": intent["action"],
                "alias": intent["alias"],
                "version_after": intended,
                "alias_found": found,
                "state": state,
            }
        )
    return resolved


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
    with ledger.exclusive():
        repair(registry, ledger, triggered_by)
        before_challenger = registry.alias(CHALLENGER)
        change_alias(
            registry,
            ledger,
            LedgerEntry("challenger", registry.model_name, CHALLENGER, before_challenger,
                        version, triggered_by, reasons, evidence),
        )  # fmt: skip
        before = registry.alias(CHAMPION)
        if make_champion:
            change_alias(
                registry,
                ledger,
                LedgerEntry("promote", registry.model_name, CHAMPION, before, version,
                            triggered_by, reasons, evidence),
            )  # fmt: skip
        return {
            "champion": registry.alias(CHAMPION),
            "challenger": registry.alias(CHALLENGER),
            "previous_champion": before,
        }


def rollback(
    registry: Registry, ledger: PromotionLedger, triggered_by: str, reason: str = ""
) -> dict[str, str]:
    """Point champion back at the champion before the current one. A promotion or
    rollback left half-finished by a dead run is repaired first, so it never stands
    in the way."""
    with ledger.exclusive():
        repair(registry, ledger, triggered_by)
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
            raise PromotionError(
                f"v{current} is the first champion; there is nothing to roll back to"
            )
        previous = history[-2]
        change_alias(
            registry,
            ledger,
            LedgerEntry(
                action="rollback",
                model_name=registry.model_name,
                alias=CHAMPION,
                version_before=current,
                version_after=previous,
                triggered_by=triggered_by,
                reasons=[reason] if reason else [],
                evidence={"rolled_back": current, "restored": previous},
            ),
        )
    return {"champion": previous, "rolled_back": current}


def model_status(registry: Registry) -> dict[str, Any]:
    """Champion and challenger with their key metrics (None when unset)."""
    out: dict[str, Any] = {"model_name": registry.model_name}
    for alias in (CHAMPION, CHALLENGER):
        version = registry.alias(alias)
        out[alias] = registry.summary(version) if version else None
    return out


def ledger_status(registry: Registry, ledger: PromotionLedger, triggered_by: str) -> dict[str, Any]:
    """For `churn status`: repair what a dead run left half-finished (unless an alias
    change is under way right now), then whether the ledger and the aliases agree."""
    with ledger.exclusive(wait=False) as held:
        repaired = repair(registry, ledger, triggered_by) if held else []
        history = ledger.history(registry.model_name)
        pending = len(ledger.pending(registry.model_name))
    champions = champion_history(history)
    challengers = history[history["action"] == "challenger"]["version_after"]
    recorded = {
        CHAMPION: champions[-1] if champions else None,
        CHALLENGER: str(challengers.iloc[-1]) if len(challengers) else None,
    }
    aliases = {alias: registry.alias(alias) for alias in recorded}
    return {
        "entries": len(history),
        "recorded": recorded,
        "aliases": aliases,
        "agrees": recorded == aliases,
        "repaired": repaired,
        "pending": pending,  # only while another process is changing an alias
    }
