from django.core.management.base import BaseCommand, CommandError

from core.models import ApiKey
from core.services import api_key_create, api_key_revoke


class Command(BaseCommand):
    help = "Create, list or revoke API keys. `apikey create --name NAME` prints the key once."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        create = sub.add_parser("create")
        create.add_argument("--name", required=True)
        sub.add_parser("list")
        revoke = sub.add_parser("revoke")
        revoke.add_argument("prefix")

    def handle(self, *args, action, **options):
        if action == "create":
            _, raw = api_key_create(name=options["name"])
            self.stdout.write(raw)
        elif action == "list":
            for key in ApiKey.objects.all():
                state = "active" if key.is_active else "revoked"
                self.stdout.write(f"{key.prefix}…  {key.name}  {state}  {key.created_at:%Y-%m-%d}")
        else:
            key = ApiKey.objects.filter(prefix=options["prefix"]).first()
            if key is None:
                raise CommandError(f"No key starts with {options['prefix']!r}.")
            api_key_revoke(key=key)
            self.stdout.write(f"revoked {key.prefix}…")
