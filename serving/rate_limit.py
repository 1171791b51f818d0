"""The rate limit counted in this process, for while Redis cannot count it.

Normally the online-store lookup counts each token subject in Redis, shared by every
worker. When Redis is unreachable the limit does not switch off: each worker counts
the same limit in a fixed window per subject of its own, so with N workers a subject
may get up to N times its limit until Redis is back."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from serving.errors import RateLimited

# subjects are verified token subjects, so few; past this many, ended windows go
MAX_SUBJECTS = 10_000


@dataclass(slots=True)
class Window:
    ends_at: float  # time.monotonic()
    used: int


class LocalRateLimit:
    def __init__(self, limit: int, window_seconds: int) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._windows: dict[str, Window] = {}

    def take(self, subject: str, cost: int) -> None:
        """Count `cost` units against `subject`, or raise RateLimited (counting
        nothing) when they would exceed its limit in the current window."""
        now = time.monotonic()
        window = self._windows.get(subject)
        if window is None or window.ends_at <= now:
            if len(self._windows) >= MAX_SUBJECTS:
                self._forget_ended(now)
            window = self._windows[subject] = Window(now + self.window_seconds, 0)
        if window.used + cost > self.limit:
            raise RateLimited(max(1, math.ceil(window.ends_at - now)))
        window.used += cost

    def _forget_ended(self, now: float) -> None:
        self._windows = {s: w for s, w in self._windows.items() if w.ends_at > now}
