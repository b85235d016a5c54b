from django.contrib import admin
from django.db.models import Count

from organizations.models import Organization
from organizations.services import organization_deactivate


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "is_active", "key_count", "people_count", "face_count", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]
    actions = ["deactivate"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            _keys=Count("api_keys", distinct=True),
            _people=Count("people", distinct=True),
            _faces=Count("faces", distinct=True),
        )

    @admin.display(description="API keys", ordering="_keys")
    def key_count(self, obj):
        return obj._keys

    @admin.display(description="People", ordering="_people")
    def people_count(self, obj):
        return obj._people

    @admin.display(description="Faces", ordering="_faces")
    def face_count(self, obj):
        return obj._faces

    @admin.action(description="Deactivate selected organizations (their keys stop working at once)")
    def deactivate(self, request, queryset):
        for organization in queryset:
            organization_deactivate(organization=organization)
