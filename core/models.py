import hashlib
import secrets

from django.db import models

KEY_PREFIX = "kota_"


def hash_api_key(raw_key: str) -> str:
    # Keys are 256-bit random tokens, so a fast digest is safe and keeps the hot path cheap.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class ApiKey(models.Model):
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, help_text="First characters, to recognise a key.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "API key"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class OutboxEvent(models.Model):
    """A domain event written in the same transaction as the change it reports.

    Lower apps publish (`invoice.created`, `quota.exhausted`, ...) without knowing who listens;
    the alerts app delivers them to webhooks. Dispatching is at-least-once; `id` is the
    idempotency key receivers see.
    """

    type = models.CharField(max_length=64, db_index=True)
    payload = models.JSONField()
    customer_external_id = models.CharField(max_length=255, blank=True, db_index=True)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)
    dispatched_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.type} #{self.pk}"
