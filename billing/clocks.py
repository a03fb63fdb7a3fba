"""Simulation clocks (R-A5): advancing one runs, in time order, what real time would have run.

Billing owns the clock, but most of the work that falls due lives in the apps above it
(period closes and billing thresholds in quotas, alert evaluation in alerts). They register a
``ClockJob`` in their ``AppConfig.ready``; billing never imports them::

    from billing.clocks import ClockJob, register_clock_job
    register_clock_job(ClockJob("period_close", run=..., next_due=...))

An advance walks the timeline step by step: the next instant any job has work (a period end,
a quota reset), capped at the target. Each step moves ``clock.now`` and runs every job at that
instant in one transaction, so an interrupted advance leaves the clock at the last finished
step and asking again resumes from there. Jobs are idempotent, so an advance repeated to the
same instant runs nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.errors import DomainError, InvalidInput

from .models import Clock

__all__ = [
    "ClockAdvance",
    "ClockJob",
    "clock_advance",
    "clock_create",
    "clock_jobs",
    "register_clock_job",
]

# A step per due instant; a year of daily resets is ~365 steps. Far beyond that, the
# operator asked for something that would hold the clock's lock for a very long time.
MAX_STEPS = 5_000


@dataclass(frozen=True)
class ClockJob:
    """Work that falls due on a clock.

    ``run(clock, at)`` does what is due at or before ``at`` for the clock's subscriptions and
    returns one dict per thing it did (only new work: a repeat returns nothing).
    ``next_due(clock, after)`` is the first instant after ``after`` at which it will have
    work (None: it only reacts to what other jobs and ingestion did).
    """

    name: str
    run: Callable[[Clock, datetime], list[dict[str, Any]]]
    next_due: Callable[[Clock, datetime], datetime | None] | None = None


_jobs: list[ClockJob] = []


def register_clock_job(job: ClockJob) -> None:
    """Jobs run in registration order at each step (period closes before thresholds...)."""
    if all(existing.name != job.name for existing in _jobs):
        _jobs.append(job)


@contextmanager
def clock_jobs(*jobs: ClockJob, replace: bool = False) -> Iterator[None]:
    """Register jobs for a ``with`` block (tests), optionally hiding the registered ones."""
    saved = list(_jobs)
    if replace:
        _jobs.clear()
    for job in jobs:
        register_clock_job(job)
    try:
        yield
    finally:
        _jobs[:] = saved


@dataclass
class ClockAdvance:
    clock: Clock
    started_from: datetime
    steps: list[dict[str, Any]] = field(default_factory=list)


def clock_create(*, name: str, now: datetime | None = None) -> Clock:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput("A clock needs a name of 1 to 100 characters.", code="invalid_name")
    now = now or timezone.now()
    if timezone.is_naive(now):
        raise InvalidInput("`now` needs a time zone offset.", code="naive_datetime")
    return Clock.objects.create(name=name, now=now)


def _next_instant(clock: Clock, to: datetime) -> datetime:
    due = [job.next_due(clock, clock.now) for job in _jobs if job.next_due is not None]
    upcoming = [at for at in due if at is not None and clock.now < at < to]
    return min(upcoming, default=to)


def clock_advance(*, clock: Clock, to: datetime) -> ClockAdvance:
    """Move ``clock`` to ``to``, running everything due on the way, oldest first (R-A5).

    Refuses to go back (422 ``clock_backwards``); advancing to the clock's own time runs the
    jobs once more at that instant, which finds nothing new to do.
    """
    if timezone.is_naive(to):
        raise InvalidInput("`to` needs a time zone offset.", code="naive_datetime")
    clock.refresh_from_db()
    if to < clock.now:
        raise DomainError(
            "A clock only moves forward.",
            code="clock_backwards",
            details={"now": clock.now.isoformat()},
        )
    result = ClockAdvance(clock=clock, started_from=clock.now)
    for _ in range(MAX_STEPS):
        with transaction.atomic():
            locked = Clock.objects.select_for_update().get(pk=clock.pk)
            if locked.now > to:  # a concurrent advance went further
                break
            at = _next_instant(locked, to)
            locked.now = at
            locked.save(update_fields=["now", "updated_at"])
            ran = [
                {"job": job.name, **entry} for job in list(_jobs) for entry in job.run(locked, at)
            ]
        clock.now, clock.updated_at = locked.now, locked.updated_at
        if ran:
            result.steps.append({"at": at, "ran": ran})
        if at >= to:
            break
    else:
        raise DomainError(
            f"More than {MAX_STEPS} steps are due before {to.isoformat()}; advance in parts.",
            code="clock_advance_too_far",
            details={"now": clock.now.isoformat()},
        )
    return result
