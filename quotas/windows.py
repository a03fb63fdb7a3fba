"""Quota windows of one subscription's service (R-Q1, R-Q4, R-L3): which window an instant
belongs to, and which part of it counts.

Pure logic over ``billing.periods`` (no Django), shared by the usage listener that writes
balances and the selectors that read them, so both always agree on window boundaries.

* usage-based: the reset window of ``billing.periods.reset_window`` in the offer's zone
  (``billing_period`` = the subscription's billing periods);
* seat-based: one window for the subscription's whole life (a level carries over, R-Q4);
  its ``end`` is ``None``.

Only the subscription's life counts: a window's *counted range* is the window clipped to
``[started_at, ended_at)``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from billing import periods

SEAT_BASED = "seat_based"
USAGE_BASED = "usage_based"


@dataclass(frozen=True, slots=True)
class Window:
    start: datetime
    end: datetime | None  # None: open-ended (seat-based)


BILLING_PERIOD = "billing_period"
# The last window found per (reset interval, zone[, anchor, billing interval]). Windows
# partition time, so any instant inside a known window belongs to it: ingest batches, which
# ask for the same few windows thousands of times, then skip ``periods.reset_window``.
_last_window: dict[tuple, Window] = {}
_LAST_WINDOW_MAX = 50_000


@dataclass(frozen=True, slots=True)
class QuotaTarget:
    """One metered service of one subscription: where a meter's usage lands."""

    subscription_id: int
    offer_service_id: int
    customer_id: int
    meter_id: int
    kind: str
    reset_interval: str
    timezone: str
    billing_interval: str
    billing_anchor: datetime
    started_at: datetime
    ended_at: datetime | None = None

    def window_at(self, at: datetime) -> Window:
        """The window ``at`` belongs to (an instant before the start maps to the first one)."""
        if self.kind == SEAT_BASED:
            return Window(self.started_at, None)
        at = max(at, self.started_at, self.billing_anchor)
        if self.reset_interval == BILLING_PERIOD:
            key = (self.reset_interval, self.timezone, self.billing_anchor, self.billing_interval)
        else:  # calendar windows do not depend on the subscription
            key = (self.reset_interval, self.timezone)
        known = _last_window.get(key)
        if known is not None and at.tzinfo is not None and known.start <= at < known.end:
            return known
        start, end = periods.reset_window(
            at,
            self.reset_interval,
            self.timezone,
            billing_anchor=self.billing_anchor,
            billing_interval=self.billing_interval,
        )
        window = Window(start, end)
        if start <= at < end:
            if len(_last_window) >= _LAST_WINDOW_MAX:
                _last_window.clear()
            _last_window[key] = window
        return window

    def counted(self, window: Window) -> tuple[datetime, datetime | None]:
        """The part of ``window`` inside the subscription's life: ``[start, end)``."""
        start = max(window.start, self.started_at)
        ends = [e for e in (window.end, self.ended_at) if e is not None]
        return start, min(ends) if ends else None

    def windows_between(self, start: datetime, end: datetime) -> Iterator[Window]:
        """Every window whose counted range meets ``[start, end)``, oldest first."""
        lo = max(start, self.started_at)
        hi = end if self.ended_at is None else min(end, self.ended_at)
        while lo < hi:
            window = self.window_at(lo)
            yield window
            if window.end is None:
                return
            lo = window.end

    def covers(self, window: Window, start: datetime, end: datetime) -> bool:
        """Whether ``[start, end)`` lies wholly inside the counted range of ``window``."""
        lo, hi = self.counted(window)
        return lo <= start and (hi is None or end <= hi)
