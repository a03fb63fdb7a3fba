"""Write settings.KOTA_BEAT_SCHEDULE into django-celery-beat's tables (DatabaseScheduler).

Idempotent: run it after every deploy (or `make run`). An entry is created or updated in
place; a task named "kota: ..." that left the setting is disabled, not deleted, so its run
history stays visible in the console.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

PREFIX = "kota: "


class Command(BaseCommand):
    help = "Create or update the periodic tasks of settings.KOTA_BEAT_SCHEDULE."

    @transaction.atomic
    def handle(self, *args, **options):
        wanted = settings.KOTA_BEAT_SCHEDULE
        for name, entry in wanted.items():
            defaults = {"task": entry["task"], "enabled": True, "interval": None, "crontab": None}
            if "every" in entry:
                defaults["interval"], _ = IntervalSchedule.objects.get_or_create(
                    every=int(entry["every"]), period=IntervalSchedule.SECONDS
                )
            elif "crontab" in entry:
                fields = {
                    "minute": "*",
                    "hour": "*",
                    "day_of_week": "*",
                    "day_of_month": "*",
                    "month_of_year": "*",
                    **entry["crontab"],
                }
                defaults["crontab"], _ = CrontabSchedule.objects.get_or_create(
                    timezone=entry.get("timezone", "UTC"), **fields
                )
            else:
                raise CommandError(f"{name!r} needs `every` (seconds) or `crontab`.")
            _, created = PeriodicTask.objects.update_or_create(name=name, defaults=defaults)
            self.stdout.write(f"{'created' if created else 'updated'}: {name} -> {entry['task']}")
        stale = PeriodicTask.objects.filter(name__startswith=PREFIX, enabled=True).exclude(
            name__in=list(wanted)
        )
        for task in stale:
            task.enabled = False
            task.save(update_fields=["enabled"])
            self.stdout.write(f"disabled: {task.name}")
