"""When to retrain: incidents in, at most one launch out, with de-duplication and a
cooldown, as plain data so the rule is tested without Dagster.

An incident has an identity that stays the same while the cause does (the drifted
features, the stale champion's version). The state, kept in the sensor's cursor,
remembers which incidents were handled and when the last retrain was launched:
- an incident already handled launches nothing again while it stays active; once it
  clears (the check passes) it is forgotten, so a recurrence is a new incident;
- incidents that appear during the cooldown after a launch are absorbed by that
  retrain (it is running or just ran on the same data) and launch nothing;
- otherwise the first new incident launches one retrain, and every new incident of
  that tick is attached to it as evidence."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Incident:
    id: str  # stable while the cause lasts, e.g. "feature_drift:attr_region,spend"
    source: str  # feature_drift | prediction_drift | stale_champion | ...
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Decision:
    launch: Incident | None
    attached: list[Incident]  # every incident this launch answers (the trigger first)
    reason: str  # why it launched or did not, for the sensor's tick log


@dataclass
class RetrainState:
    handled: dict[str, float] = field(default_factory=dict)  # incident id -> when
    last_launch: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)  # recent launches

    @classmethod
    def from_cursor(cls, cursor: str | None) -> RetrainState:
        if not cursor:
            return cls()
        data = json.loads(cursor)
        return cls(data.get("handled", {}), data.get("last_launch"), data.get("history", []))

    def to_cursor(self) -> str:
        return json.dumps(
            {
                "handled": self.handled,
                "last_launch": self.last_launch,
                "history": self.history[-20:],
            }
        )

    def decide(self, incidents: list[Incident], now: float, cooldown_seconds: float) -> Decision:
        active = {i.id for i in incidents}
        self.handled = {k: v for k, v in self.handled.items() if k in active}  # cleared
        new = [i for i in incidents if i.id not in self.handled]
        if not new:
            known = f"{len(incidents)} active incident(s), all handled" if incidents else "none"
            return Decision(None, [], f"no new incident ({known})")
        for incident in new:
            self.handled[incident.id] = now
        if self.last_launch is not None and now - self.last_launch < cooldown_seconds:
            until = self.last_launch + cooldown_seconds
            return Decision(
                None,
                new,
                f"{', '.join(i.id for i in new)} absorbed by the retrain launched "
                f"{now - self.last_launch:.0f} s ago (cooldown until {until:.0f})",
            )
        self.last_launch = now
        self.history.append({"at": now, "trigger": new[0].id, "incidents": [i.id for i in new]})
        return Decision(new[0], new, f"retraining for {new[0].id}")
