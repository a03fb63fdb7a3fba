from django.core.management.base import BaseCommand

from quotas.demo import demo_load


class Command(BaseCommand):
    help = "Create (or refresh) the worked examples of RULES.md as demo data. Safe to run twice."

    def handle(self, *args, **options):
        summary = demo_load()
        for line in summary:
            self.stdout.write(line)
