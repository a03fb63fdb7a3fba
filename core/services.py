from django.utils import timezone

from .models import ApiKey, generate_api_key, hash_api_key


def api_key_create(*, name: str) -> tuple[ApiKey, str]:
    """Create a key; the raw key is returned once and only its digest is stored."""
    raw = generate_api_key()
    key = ApiKey.objects.create(name=name, prefix=raw[:12], digest=hash_api_key(raw))
    return key, raw


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key
