from django.apps import apps
from django.contrib import admin
from django.db.models import Count, IntegerField, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.html import format_html

from organizations.models import Organization
from organizations.services import organization_deactivate, organization_delete


def count_per_organization(app_label: str, model_name: str, **filters):
    """A correlated COUNT per organisation: separate subqueries, so the counts never multiply
    each other as joins of keys x people x faces would. Models are looked up by name because
    organizations/ does not import the apps that hang off it."""
    model = apps.get_model(app_label, model_name)
    counted = (
        model.objects.filter(organization=OuterRef("pk"), **filters)
        .order_by()
        .values("organization")
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = [
        "slug", "name", "is_active", "people_count", "face_count", "active_key_count", "key_count",
        "last_request_at", "created_at",
    ]
    list_filter = ["is_active", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]
    actions = ["deactivate"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            _people=count_per_organization("faces", "Person"),
            _faces=count_per_organization("faces", "Face"),
            _keys=count_per_organization("apikeys", "APIKey"),
            _active_keys=count_per_organization("apikeys", "APIKey", revoked_at__isnull=True),
            # The newest use of any of its keys: when this tenant last called the API.
            _last_request=Max("api_keys__last_used_at", filter=Q(api_keys__last_used_at__isnull=False)),
        )

    @admin.display(description="People", ordering="_people")
    def people_count(self, obj):
        url = reverse("admin:faces_person_changelist") + f"?organization__id__exact={obj.pk}"
        return format_html('<a href="{}">{}</a>', url, obj._people)

    @admin.display(description="Faces", ordering="_faces")
    def face_count(self, obj):
        return obj._faces

    @admin.display(description="Active keys", ordering="_active_keys")
    def active_key_count(self, obj):
        changelist = reverse("admin:apikeys_apikey_changelist")
        url = f"{changelist}?organization__id__exact={obj.pk}&revoked_at__isempty=1"
        return format_html('<a href="{}">{}</a>', url, obj._active_keys)

    @admin.display(description="All keys", ordering="_keys")
    def key_count(self, obj):
        return obj._keys

    @admin.display(description="Last API request", ordering="_last_request")
    def last_request_at(self, obj):
        return obj._last_request

    @admin.action(description="Deactivate selected organizations (their keys stop working at once)")
    def deactivate(self, request, queryset):
        for organization in queryset:
            organization_deactivate(organization=organization)

    # Deletes go through the service: key cache evicted after commit, vectors (Atlas too) dropped.
    def delete_model(self, request, obj):
        organization_delete(organization=obj)

    def delete_queryset(self, request, queryset):
        for organization in queryset:
            organization_delete(organization=organization)
