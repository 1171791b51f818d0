"""A test hook for crash tests: with CHURN_FAULT_AFTER=<step> (or <step>#<n>) the
process kills itself with SIGKILL right after it reaches that step (the n-th time;
default the first), as `kill -9` or a power cut would at exactly that point. Unset, a
crash point costs one dictionary lookup. Never set it outside tests.

Steps, named where they are called:
- churn_assets.ml.promotion: `<action>:intent` (intent row written, alias not moved),
  `<action>:alias` (alias moved, not confirmed), `<action>:confirm`; action is
  challenger, promote or rollback;
- warehouse.prediction_log: `drain:read` (a batch read from the stream, not committed),
  `drain:commit` (committed to the warehouse, not acknowledged)."""

from __future__ import annotations

import os
import signal

FAULT_VARIABLE = "CHURN_FAULT_AFTER"
_times_reached: dict[str, int] = {}


def crash_point(step: str) -> None:
    wanted = os.environ.get(FAULT_VARIABLE)
    if not wanted:
        return
    name, _, nth = wanted.partition("#")
    if name != step:
        return
    _times_reached[step] = _times_reached.get(step, 0) + 1
    if _times_reached[step] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
