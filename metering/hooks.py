"""Extension points for the apps above metering (quotas, alerts); metering never imports them.

They register in their ``AppConfig.ready``::

    from metering.hooks import register_usage_listener
    register_usage_listener(quota_usage_apply)

* Usage listeners get, inside the ingesting transaction and after the rollups are written,
  one ``UsageDelta`` per (meter, customer, 15-minute bucket) touched by the batch: only
  events that were accepted (not duplicates, not rejected) and that the meter counts. An
  exception in a listener rolls the whole batch back.
* Meter-rebuild listeners get a meter id, inside the transaction that finishes a back-fill,
  once the meter's rollups were replaced; no ingesting transaction runs concurrently then, so
  a listener can recompute whatever it derives from the rollups.

Registration is idempotent (the same function twice is kept once); ``listeners()`` swaps in
a temporary registry for tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from .aggregation import Partial

__all__ = [
    "UsageDelta",
    "listeners",
    "register_meter_rebuild_listener",
    "register_usage_listener",
    "unregister_meter_rebuild_listener",
    "unregister_usage_listener",
]


@dataclass(frozen=True, slots=True)
class UsageDelta:
    meter_id: int
    customer_id: int
    bucket_start: datetime  # UTC, aligned to 15 minutes
    partial: Partial  # newly accepted events of this batch for this meter+customer in that bucket


UsageListener = Callable[[list[UsageDelta]], None]
RebuildListener = Callable[[int], None]

_usage_listeners: list[UsageListener] = []
_rebuild_listeners: list[RebuildListener] = []


def register_usage_listener(fn: Callable[[list[UsageDelta]], None]) -> None:
    if fn not in _usage_listeners:
        _usage_listeners.append(fn)


def register_meter_rebuild_listener(fn: Callable[[int], None]) -> None:
    if fn not in _rebuild_listeners:
        _rebuild_listeners.append(fn)


def unregister_usage_listener(fn: UsageListener) -> None:
    if fn in _usage_listeners:
        _usage_listeners.remove(fn)


def unregister_meter_rebuild_listener(fn: RebuildListener) -> None:
    if fn in _rebuild_listeners:
        _rebuild_listeners.remove(fn)


@contextmanager
def listeners(
    *,
    usage: tuple[UsageListener, ...] | list[UsageListener] = (),
    rebuild: tuple[RebuildListener, ...] | list[RebuildListener] = (),
    replace: bool = False,
) -> Iterator[None]:
    """Register listeners for the duration of a ``with`` block, then restore the registry.

    ``replace=True`` also hides the listeners registered before (e.g. by other apps), so a
    test sees only its own.
    """
    saved_usage, saved_rebuild = list(_usage_listeners), list(_rebuild_listeners)
    if replace:
        _usage_listeners.clear()
        _rebuild_listeners.clear()
    for fn in usage:
        register_usage_listener(fn)
    for fn in rebuild:
        register_meter_rebuild_listener(fn)
    try:
        yield
    finally:
        _usage_listeners[:] = saved_usage
        _rebuild_listeners[:] = saved_rebuild


def emit_usage(deltas: list[UsageDelta]) -> None:
    """Called by ingestion; listeners run in registration order."""
    if deltas:
        for fn in list(_usage_listeners):
            fn(deltas)


def emit_meter_rebuilt(meter_id: int) -> None:
    for fn in list(_rebuild_listeners):
        fn(meter_id)
