from rest_framework import authentication, exceptions

from core.models import ApiKey, hash_api_key


class ApiKeyPrincipal:
    """The caller behind an API key: an operator backend, not a person."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_active = True

    def __init__(self, key: ApiKey):
        self.key = key
        self.pk = None
        self.username = f"apikey:{key.prefix}"

    def __str__(self) -> str:
        return self.username


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Authorization header must be 'Bearer <key>'.")
        try:
            raw = header[1].decode()
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed("Invalid API key.") from exc
        key = (
            ApiKey.objects.filter(digest=hash_api_key(raw), revoked_at__isnull=True)
            .only("id", "prefix", "name")
            .first()
        )
        if key is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request):
        return self.keyword
