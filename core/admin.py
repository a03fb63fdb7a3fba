from django.contrib import admin, messages
from unfold.admin import ModelAdmin
from unfold.decorators import action

from .models import ApiKey
from .services import api_key_create, api_key_revoke


@admin.register(ApiKey)
class ApiKeyAdmin(ModelAdmin):
    list_display = ["name", "prefix", "created_at", "revoked_at"]
    search_fields = ["name", "prefix"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    fields = ["name", "prefix", "created_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "revoked_at"]
    actions = ["revoke"]

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        key, raw = api_key_create(name=obj.name)
        obj.pk, obj.prefix, obj.digest = key.pk, key.prefix, key.digest
        self.message_user(
            request, f"New API key (shown once, copy it now): {raw}", level=messages.WARNING
        )

    @action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        for key in queryset:
            api_key_revoke(key=key)
