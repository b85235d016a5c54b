from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from apikeys.models import MAX_ROTATION_GRACE_SECONDS, SCOPES, APIKey
from apikeys.services import api_key_delete, api_key_issue, api_key_revoke, api_key_rotate
from faceportal.errors import FacePortalError

SCOPE_CHOICES = [
    ("recognize", "recognize: recognise, verify, live recognition (WebSocket)"),
    ("enrol", "enrol: register people, add faces"),
    ("manage", "manage: read and edit people and faces, the unknown-face inbox"),
]


class APIKeyCreateForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=SCOPE_CHOICES, initial=list(SCOPES),
                                       widget=forms.CheckboxSelectMultiple, help_text="What the key may do.")

    class Meta:
        model = APIKey
        fields = ["organization", "user", "name", "scopes", "expires_at"]
        labels = {"name": "API key name"}
        help_texts = {"name": "Where the key is used, e.g. 'laptop' or 'ci'; unique among active keys.",
                      "expires_at": "Optional: after this moment the key is refused. Empty: never."}

    def clean_expires_at(self):
        expires_at = self.cleaned_data.get("expires_at")
        if expires_at is not None and expires_at <= timezone.now():
            raise forms.ValidationError("The expiry must be in the future.")
        return expires_at


class APIKeyRotateForm(forms.Form):
    grace_seconds = forms.IntegerField(
        min_value=0, max_value=MAX_ROTATION_GRACE_SECONDS, initial=0, label="Grace (seconds)",
        help_text="How long the old secret keeps working: 0 stops it at once; at most 86400 (24 h).",
    )


@admin.register(APIKey)
class APIKeyAdmin(admin.ModelAdmin):
    list_display = [
        "key_name", "user", "organization", "prefix", "scopes", "is_active", "created_at", "last_used_at",
        "expires_at", "revoked_at",
    ]
    list_filter = ["organization", ("revoked_at", admin.EmptyFieldListFilter), "created_at", "last_used_at"]
    search_fields = ["name", "user", "prefix", "organization__slug"]
    list_select_related = ["organization"]
    date_hierarchy = "created_at"
    # The hash is never shown; the prefix is public by design.
    readonly_fields = ["organization", "user", "key_name", "prefix", "scopes", "created_at", "last_used_at",
                       "expires_at", "rotated_at", "previous_valid_until", "revoked_at"]
    actions = ["revoke"]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = APIKeyCreateForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return [*self.readonly_fields, "rotate_link", "revoke_button"] if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["organization", "user", "name", "scopes", "expires_at"]
        return [*self.readonly_fields, "rotate_link", "revoke_button"]

    def save_model(self, request, obj, form, change):
        if change:
            return
        issued = api_key_issue(organization=obj.organization, user=obj.user, name=obj.name,
                               scopes=form.cleaned_data["scopes"], expires_at=form.cleaned_data.get("expires_at"))
        obj.pk = issued.api_key.pk
        obj.prefix = issued.api_key.prefix
        # Only for response_add below, which renders it once; never stored, logged or put in a message.
        obj._issued_plaintext = issued.plaintext

    def response_add(self, request, obj, post_url_continue=None):
        plaintext = getattr(obj, "_issued_plaintext", None)
        if plaintext is None:
            return super().response_add(request, obj, post_url_continue)
        return self._show_secret_once(request, obj, plaintext, title="Copy the new API key now")

    def _show_secret_once(self, request, obj, plaintext, *, title, previous_valid_until=None):
        host = request.build_absolute_uri("/").rstrip("/")
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "previous_valid_until": previous_valid_until,
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
        rotate = path("<path:object_id>/rotate/", self.admin_site.admin_view(self.rotate_view),
                      name="apikeys_apikey_rotate")
        return [revoke, rotate, *super().get_urls()]

    @admin.display(description="Rotate")
    def rotate_link(self, obj):
        if obj.revoked_at is not None or obj.is_expired:
            return "Revoked or expired keys cannot be rotated"
        url = reverse("admin:apikeys_apikey_rotate", args=[obj.pk])
        return format_html('<a class="button" href="{}">Rotate: a new secret…</a>', url)

    def rotate_view(self, request, object_id):
        """GET: the grace form; POST: rotate, and answer with the new secret, once."""
        api_key = get_object_or_404(APIKey.objects.select_related("organization"), pk=object_id)
        if not admin.ModelAdmin.has_change_permission(self, request, api_key):
            raise PermissionDenied
        form = APIKeyRotateForm(request.POST if request.method == "POST" else None)
        if request.method == "POST" and form.is_valid():
            try:
                rotated = api_key_rotate(api_key=api_key, grace_seconds=form.cleaned_data["grace_seconds"])
            except FacePortalError as refused:
                messages.error(request, refused.message)
                return HttpResponseRedirect(reverse("admin:apikeys_apikey_change", args=[api_key.pk]))
            return self._show_secret_once(request, rotated.api_key, rotated.plaintext,
                                          title="Copy the rotated API key now",
                                          previous_valid_until=rotated.api_key.previous_valid_until)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Rotate {api_key}",
            "opts": self.model._meta,
            "api_key": api_key,
            "form": form,
        }
        return TemplateResponse(request, "admin/apikeys/apikey/rotate.html", context)

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
