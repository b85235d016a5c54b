from django import forms
from django.contrib import admin, messages

from apikeys.models import APIKey
from apikeys.services import api_key_issue, api_key_revoke


class APIKeyCreateForm(forms.ModelForm):
    class Meta:
        model = APIKey
        fields = ["organization", "user", "name"]


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "organization", "prefix", "is_active", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter), "created_at", "last_used_at"]
    search_fields = ["name", "user", "prefix", "organization__slug"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    # The hash is never shown; the prefix is public by design.
    readonly_fields = ["organization", "user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = APIKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        return ["organization", "user", "name"] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            return
        issued = api_key_issue(organization=obj.organization, user=obj.user, name=obj.name)
        obj.pk = issued.api_key.pk
        obj.prefix = issued.api_key.prefix
        messages.warning(request, f"New API key (shown once, copy it now): {issued.plaintext}")

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="Active", boolean=True, ordering="revoked_at")
    def is_active(self, obj):
        return obj.revoked_at is None

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        active = list(queryset.filter(revoked_at__isnull=True).select_related("organization"))
        for api_key in active:
            api_key_revoke(api_key=api_key)
        messages.success(request, f"Revoked {len(active)} key(s).")
