from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied
from django.db.models import Case, Count, IntegerField, Max, OuterRef, Q, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.http import JsonResponse, QueryDict
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from faceportal.admin_names import DisplayNameForm, warn_about_lookalikes
from faceportal.errors import FacePortalError
from faceportal.serializers import validated
from organizations.models import Organization
from organizations.services import organization_deactivate, organization_delete

# Branding of every admin page (the admin site is Django's default one).
admin.site.site_header = "FacePortal"
admin.site.site_title = "FacePortal staff"
admin.site.index_title = "Staff console"


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
    form = DisplayNameForm
    list_display = [
        "slug", "name", "is_active", "false_match_rate", "people_count", "face_count", "active_key_count",
        "key_count", "last_request_at", "created_at", "try_link",
    ]
    list_filter = ["is_active", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]
    actions = ["deactivate"]
    change_form_template = "admin/organizations/organization/overview.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            _people=count_per_organization("faces", "Person"),
            _faces=count_per_organization("faces", "Face"),
            _keys=count_per_organization("apikeys", "APIKey"),
            # A deactivated organisation's keys do not work, so none of them counts as active.
            _active_keys=Case(
                When(is_active=False, then=Value(0)),
                default=count_per_organization("apikeys", "APIKey", revoked_at__isnull=True),
                output_field=IntegerField(),
            ),
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

    @admin.display(description="Try it")
    def try_link(self, obj):
        url = reverse("admin:organizations_organization_try", args=[obj.pk])
        return format_html('<a href="{}">Try recognition</a>', url)

    @admin.display(description="Last API request", ordering="_last_request")
    def last_request_at(self, obj):
        return obj._last_request

    @admin.action(description="Deactivate selected organizations (their keys stop working at once)")
    def deactivate(self, request, queryset):
        if request.POST.get("post") != "yes":
            # An intermediate page says what deactivation does before anything changes.
            context = {
                **self.admin_site.each_context(request),
                "title": "Deactivate organizations?",
                "opts": self.model._meta,
                "organizations": queryset.annotate(active_key_total=count_per_organization(
                    "apikeys", "APIKey", revoked_at__isnull=True)),
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

    # --- overview, "try it" ------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:object_id>/try/", wrap(self.try_view), name="organizations_organization_try"),
            path("<int:object_id>/try/recognize/", wrap(require_POST(self.try_recognize)),
                 name="organizations_organization_try_recognize"),
            path("<int:object_id>/try/register/", wrap(require_POST(self.try_register)),
                 name="organizations_organization_try_register"),
            *super().get_urls(),
        ]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        others = list(Organization.objects.exclude(pk=obj.pk).values_list("name", flat=True))
        warn_about_lookalikes(request, name=obj.name, others=others, what="the organisation")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        organization = self.get_object(request, object_id)
        if organization is not None:
            extra_context = {**(extra_context or {}), **organization_overview(organization)}
        return super().change_view(request, object_id, form_url, extra_context)

    def _organization_for(self, request, object_id) -> Organization:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return get_object_or_404(Organization, pk=object_id)

    def try_view(self, request, object_id):
        organization = self._organization_for(request, object_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Try recognition · {organization.slug}",
            "opts": self.model._meta,
            "original": organization,
            "organization": organization,
            "decision": decision_summary(organization),
            "model": settings.DEEPFACE_EMBEDDER_MODEL,
            "detector": settings.DEEPFACE_DETECTOR_BACKEND,
            "max_image_mb": settings.FACEPORTAL_MAX_IMAGE_BYTES / (1024 * 1024),
            "can_register": self.has_change_permission(request, organization),
        }
        return TemplateResponse(request, "admin/organizations/organization/try.html", context)

    def try_recognize(self, request, object_id):
        from recognition.serializers import RecognizeInputSerializer, RecognizeOutputSerializer
        from recognition.services import DEFAULT_MAX_RESULTS, recognize

        organization = self._organization_for(request, object_id)
        try:
            options = validated(RecognizeInputSerializer, data=posted_form(request))
            result = recognize(organization=organization, image=options["image"], threshold=options.get("threshold"),
                               max_results=options.get("max_results") or DEFAULT_MAX_RESULTS)
        except FacePortalError as exc:
            return JsonResponse(exc.as_payload(), status=exc.status_code)
        return JsonResponse(RecognizeOutputSerializer(result).data)

    def try_register(self, request, object_id):
        from faces.serializers import RegisterInputSerializer, RegisterOutputSerializer
        from faces.services import person_register

        organization = self._organization_for(request, object_id)
        if not self.has_change_permission(request, organization):
            raise PermissionDenied
        try:
            data = validated(RegisterInputSerializer,
                             data={"name": request.POST.get("name"), "images": request.FILES.getlist("image")})
            result = person_register(organization=organization, name=data["name"], images=data["images"])
        except FacePortalError as exc:
            return JsonResponse(exc.as_payload(), status=exc.status_code)
        answer = RegisterOutputSerializer(result).data
        answer["person"]["url"] = reverse("admin:faces_person_change", args=[result.person.pk])
        return JsonResponse(answer, status=201)


def posted_form(request) -> QueryDict:
    """A form post's fields and files in one QueryDict, as a REST view's `request.data` holds them."""
    form = request.POST.copy()
    form.update(request.FILES)
    return form


def decision_summary(organization: Organization) -> dict:
    """What decides who gets a name for a request without a threshold of its own, in the words of a
    `POST /recognize` answer (threshold, threshold_source, false_match_rate, gallery_size), with the
    fallback that decides only for a model without calibration data."""
    from faces.selectors import decision_in_force, uncalibrated_threshold
    from recognition.serializers import DecisionInForceSerializer

    decision = dict(DecisionInForceSerializer(decision_in_force(organization=organization)).data)
    rate = organization.false_match_rate
    return {
        **decision,
        "false_match_percent": f"{rate * 100:.3g}%",
        "uncalibrated_threshold": uncalibrated_threshold(),
    }


def organization_overview(organization: Organization) -> dict:
    """What the overview above the change form shows: counts, keys, traffic and decision settings."""
    from recognition.usage import requests_per_day

    person_model = apps.get_model("faces", "Person")
    face_model = apps.get_model("faces", "Face")
    key_model = apps.get_model("apikeys", "APIKey")
    per_day = requests_per_day(organization_id=organization.pk, days=14)
    peak = max((count for _, count in per_day), default=0) or 1
    keys = list(key_model.objects.filter(organization=organization).order_by("revoked_at", "-last_used_at", "name"))
    return {
        "overview": {
            "people": person_model.objects.filter(organization=organization).count(),
            "faces": face_model.objects.filter(organization=organization).count(),
            "keys": keys,
            "active_keys": sum(1 for key in keys if key.revoked_at is None) if organization.is_active else 0,
            "per_day": [(day, count, round(100 * count / peak)) for day, count in per_day],
            "requests_total": sum(count for _, count in per_day),
            "requests_today": per_day[-1][1],
            "decision": decision_summary(organization),
            "model": settings.DEEPFACE_EMBEDDER_MODEL,
            "detector": settings.DEEPFACE_DETECTOR_BACKEND,
            "vector_store": settings.FACEPORTAL_VECTOR_STORE,
            "issue_key_url": reverse("admin:apikeys_apikey_add") + f"?organization={organization.pk}",
            "try_url": reverse("admin:organizations_organization_try", args=[organization.pk]),
            "people_url": reverse("admin:faces_person_changelist") + f"?organization__id__exact={organization.pk}",
            "keys_url": reverse("admin:apikeys_apikey_changelist") + f"?organization__id__exact={organization.pk}",
        }
    }
