from django.apps import AppConfig


class MeteringConfig(AppConfig):
    name = "metering"

    def ready(self) -> None:
        # Registers the exact-decimal SQL functions on every new SQLite connection.
        from . import sql  # noqa: F401
