from rest_framework.permissions import BasePermission

from core.models import ApiKey


class IsOperator(BasePermission):
    """The REST API is the operator's: an API key or a staff session."""

    message = "An API key or a staff session is required."

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiKey):
            return True
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff)
