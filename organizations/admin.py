from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse

from faceportal.admin_names import DisplayNameForm, warn_about_lookalikes
from organizations.models import Organization
from organizations.services import organization_deactivate, organization_delete

# Branding of every admin page (the admin site is Django's default one).
admin.site.site_header = "FacePortal"
admin.site.site_title = "FacePortal staff"
admin.site.index_title = "Staff console"


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    """The tenant itself: its settings, deactivation and deletion. The staff console (console/admin.py)
    builds on this class with what it knows of the other rooms: counts, overview, try-it page."""

    form = DisplayNameForm
    list_display = ["slug", "name", "is_active", "false_match_rate", "created_at"]
    list_filter = ["is_active", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]
    actions = ["deactivate"]

    @admin.action(description="Deactivate selected organizations (their keys stop working at once)")
    def deactivate(self, request, queryset):
        if request.POST.get("post") != "yes":
            # An intermediate page says what deactivation does before anything changes.
            context = {
                **self.admin_site.each_context(request),
                "title": "Deactivate organizations?",
                "opts": self.model._meta,
                "organizations": self.organizations_to_deactivate(queryset),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(request, "admin/organizations/organization/deactivate_confirmation.html", context)
        count = 0
        for organization in queryset:
            organization_deactivate(organization=organization)
            count += 1
        messages.success(request, f"Deactivated {count} organization(s); their API keys no longer work.")
        return None

    # Deletes go through the service: key cache evicted after commit, vectors (Atlas too) dropped.
    def delete_model(self, request, obj):
        organization_delete(organization=obj)

    def delete_queryset(self, request, queryset):
        for organization in queryset:
            organization_delete(organization=organization)

    def organizations_to_deactivate(self, queryset):
        """The organisations the confirmation page lists (the console adds their live key counts)."""
        return queryset

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        others = list(Organization.objects.exclude(pk=obj.pk).values_list("name", flat=True))
        warn_about_lookalikes(request, name=obj.name, others=others, what="the organisation")
