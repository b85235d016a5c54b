from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from apikeys.models import APIKey
from apikeys.services import api_key_delete, api_key_issue, api_key_revoke


class APIKeyCreateForm(forms.ModelForm):
    class Meta:
        model = APIKey
        fields = ["organization", "user", "name"]
        labels = {"name": "API key name"}
        help_texts = {"name": "Where the key is used, e.g. 'laptop' or 'ci'; unique among active keys."}


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = [
        "key_name", "user", "organization", "prefix", "is_active", "created_at", "last_used_at", "revoked_at",
    ]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter), "created_at", "last_used_at"]
    search_fields = ["name", "user", "prefix", "organization__slug"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    # The hash is never shown; the prefix is public by design.
    readonly_fields = ["organization", "user", "key_name", "prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = APIKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "revoke_button"] if obj is not None else []

    def get_fields(self, request, obj=None):
        return ["organization", "user", "name"] if obj is None else [*self.readonly_fields, "revoke_button"]

    def save_model(self, request, obj, form, change):
        if change:
            return
        issued = api_key_issue(organization=obj.organization, user=obj.user, name=obj.name)
        obj.pk = issued.api_key.pk
        obj.prefix = issued.api_key.prefix
        # Only for response_add below, which renders it once; never stored, logged or put in a message.
        obj._issued_plaintext = issued.plaintext

    def response_add(self, request, obj, post_url_continue=None):
        plaintext = getattr(obj, "_issued_plaintext", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        host = request.build_absolute_uri("/").rstrip("/")
        context = {
            **self.admin_site.each_context(request),
            "title": "Copy the new API key now",
            "opts": self.model._meta,
            "api_key": obj,
            "plaintext": plaintext,
            "host": host,
            "change_url": reverse("admin:apikeys_apikey_change", args=[obj.pk]),
            "organization_url": reverse("admin:organizations_organization_change", args=[obj.organization_id]),
        }
        # Answered to the POST itself, so the secret never sits in a session or a redirect target.
        response = TemplateResponse(request, "admin/apikeys/apikey/issued.html", context)
        response["Cache-Control"] = "no-store"
        response["Referrer-Policy"] = "no-referrer"
        return response

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request, obj)

    @admin.display(description="API key name", ordering="name")
    def key_name(self, obj):
        return obj.name

    @admin.display(description="Active", boolean=True, ordering="revoked_at")
    def is_active(self, obj):
        # A deactivated organisation's keys are refused, so they are not shown as active either.
        return obj.revoked_at is None and obj.organization.is_active

    @admin.action(description="Revoke selected keys")
    def revoke(self, request, queryset):
        active = list(queryset.filter(revoked_at__isnull=True).select_related("organization"))
        for api_key in active:
            api_key_revoke(api_key=api_key)
        messages.success(request, f"Revoked {len(active)} key(s).")

    # --- deletes and revocation go through the services: the key stops working at once ---------
    def delete_model(self, request, obj):
        api_key_delete(api_key=obj)

    def delete_queryset(self, request, queryset):
        for api_key in queryset.select_related("organization"):
            api_key_delete(api_key=api_key)

    def get_urls(self):
        revoke = path("<path:object_id>/revoke/", self.admin_site.admin_view(self.revoke_view),
                      name="apikeys_apikey_revoke")
        return [revoke, *super().get_urls()]

    @admin.display(description="Revoke")
    def revoke_button(self, obj):
        if obj.revoked_at is not None:
            return "Revoked"
        # Submits the page's own form (it carries the CSRF token) to the revoke view.
        url = reverse("admin:apikeys_apikey_revoke", args=[obj.pk])
        return format_html('<button type="submit" formaction="{}" formmethod="post" class="button">'
                           "Revoke this key now</button>", url)

    def revoke_view(self, request, object_id):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        api_key = get_object_or_404(APIKey.objects.select_related("organization"), pk=object_id)
        # The model's change permission (this admin hides editing, not revocation).
        if not admin.ModelAdmin.has_change_permission(self, request, api_key):
            raise PermissionDenied
        api_key_revoke(api_key=api_key)
        messages.success(request, f"Revoked {api_key}; it no longer authenticates.")
        return HttpResponseRedirect(reverse("admin:apikeys_apikey_change", args=[api_key.pk]))
