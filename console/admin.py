"""The staff console: the organisation list with every room's counts, the overview above each
organisation's change form, and the try-it page. It composes all the rooms of one tenant, so it
sits above them all (organizations, apikeys, faces, recognition) and the rooms never import it."""

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Case, IntegerField, Max, Q, Value, When
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.views.decorators.http import require_POST

from apikeys.models import APIKey
from console.selectors import count_per_organization
from faceportal.errors import FacePortalError
from faceportal.serializers import validated
from faces.matching import decision_in_force, uncalibrated_threshold
from faces.models import Face, Person, UnknownFace
from faces.selectors import person_get
from faces.serializers import RegisterInputSerializer, RegisterOutputSerializer
from faces.services import person_register
from faces.unknowns.selectors import unknown_cluster_get, unknown_cluster_list, unknown_face_get
from faces.unknowns.serializers import ClusterAssignInputSerializer
from faces.unknowns.services import unknown_cluster_assign, unknown_cluster_dismiss
from organizations.admin import OrganizationAdmin
from organizations.models import Organization
from organizations.usage import requests_per_day
from recognition.serializers import DecisionInForceSerializer, RecognizeInputSerializer, RecognizeOutputSerializer
from recognition.services import DEFAULT_MAX_RESULTS, recognize

admin.site.unregister(Organization)


@admin.register(Organization)
class ConsoleOrganizationAdmin(OrganizationAdmin):
    list_display = [
        "slug", "name", "is_active", "false_match_rate", "people_count", "face_count", "active_key_count",
        "key_count", "last_request_at", "created_at", "try_link", "unknown_link",
    ]
    change_form_template = "admin/organizations/organization/overview.html"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            _people=count_per_organization(Person),
            _faces=count_per_organization(Face),
            _keys=count_per_organization(APIKey),
            # A deactivated organisation's keys do not work, so none of them counts as active.
            _active_keys=Case(
                When(is_active=False, then=Value(0)),
                default=count_per_organization(APIKey, revoked_at__isnull=True),
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

    @admin.display(description="Unknown faces")
    def unknown_link(self, obj):
        url = reverse("admin:organizations_organization_unknown", args=[obj.pk])
        return format_html('<a href="{}">Unknown faces</a>', url)

    @admin.display(description="Last API request", ordering="_last_request")
    def last_request_at(self, obj):
        return obj._last_request

    def organizations_to_deactivate(self, queryset):
        return queryset.annotate(active_key_total=count_per_organization(APIKey, revoked_at__isnull=True))

    # --- overview, "try it" ------------------------------------------------------------------------

    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("<int:object_id>/try/", wrap(self.try_view), name="organizations_organization_try"),
            path("<int:object_id>/try/recognize/", wrap(require_POST(self.try_recognize)),
                 name="organizations_organization_try_recognize"),
            path("<int:object_id>/try/register/", wrap(require_POST(self.try_register)),
                 name="organizations_organization_try_register"),
            path("<int:object_id>/unknown-faces/", wrap(self.unknown_view), name="organizations_organization_unknown"),
            path("<int:object_id>/unknown-faces/<int:unknown_id>/thumbnail/", wrap(self.unknown_thumbnail),
                 name="organizations_organization_unknown_thumbnail"),
            path("<int:object_id>/unknown-clusters/<int:cluster_id>/assign/", wrap(require_POST(self.unknown_assign)),
                 name="organizations_organization_unknown_assign"),
            path("<int:object_id>/unknown-clusters/<int:cluster_id>/dismiss/",
                 wrap(require_POST(self.unknown_dismiss)), name="organizations_organization_unknown_dismiss"),
            *super().get_urls(),
        ]

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
        organization = self._organization_for(request, object_id)
        try:
            options = validated(RecognizeInputSerializer, data=posted_form(request))
            # A staff member's test photo is not a face the organisation saw: never kept as unknown.
            result = recognize(organization=organization, image=options["image"], threshold=options.get("threshold"),
                               max_results=options.get("max_results") or DEFAULT_MAX_RESULTS, may_keep=False)
        except FacePortalError as exc:
            return JsonResponse(exc.as_payload(), status=exc.status_code)
        return JsonResponse(RecognizeOutputSerializer(result).data)

    def try_register(self, request, object_id):
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

    # --- unknown faces ------------------------------------------------------------------------------

    def unknown_view(self, request, object_id, error: FacePortalError | None = None):
        organization = self._organization_for(request, object_id)
        clusters = unknown_cluster_list(organization=organization)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Unknown faces · {organization.slug}",
            "opts": self.model._meta,
            "original": organization,
            "organization": organization,
            "clusters": clusters,
            "faces_kept": sum(cluster.size for cluster in clusters),
            "people": Person.objects.filter(organization=organization).order_by("name", "id").only("id", "name"),
            "can_act": self.has_change_permission(request, organization),
            "error": error.as_payload()["error"] if error else None,
        }
        status = error.status_code if error else 200
        return TemplateResponse(request, "admin/organizations/organization/unknown_faces.html", context, status=status)

    def unknown_thumbnail(self, request, object_id, unknown_id):
        organization = self._organization_for(request, object_id)
        try:
            unknown = unknown_face_get(organization=organization, unknown_id=unknown_id)
        except FacePortalError as exc:
            return JsonResponse(exc.as_payload(), status=exc.status_code)
        response = HttpResponse(bytes(unknown.crop), content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=300"
        return response

    def _acting_on(self, request, object_id) -> Organization:
        organization = self._organization_for(request, object_id)
        if not self.has_change_permission(request, organization):
            raise PermissionDenied
        return organization

    def unknown_assign(self, request, object_id, cluster_id):
        organization = self._acting_on(request, object_id)
        # Each card's forms send one of "name" (a new person) or "person" (an existing one), as a REST body does.
        form = QueryDict(mutable=True)
        for key in ("name", "person"):
            if key in request.POST:
                form[key] = request.POST[key]
        try:
            data = validated(ClusterAssignInputSerializer, data=form)
            cluster = unknown_cluster_get(organization=organization, cluster_id=cluster_id)
            person = person_get(organization=organization, person_id=data["person"]) if "person" in data else None
            result = unknown_cluster_assign(organization=organization, cluster=cluster, name=data.get("name"),
                                            person=person)
        except FacePortalError as exc:
            return self.unknown_view(request, object_id, error=exc)
        messages.success(request, f"{result.faces_added} face{'s' if result.faces_added != 1 else ''} added to "
                                  f"{result.person.name}{' (new person)' if result.created else ''}.")
        return HttpResponseRedirect(reverse("admin:organizations_organization_unknown", args=[organization.pk]))

    def unknown_dismiss(self, request, object_id, cluster_id):
        organization = self._acting_on(request, object_id)
        try:
            cluster = unknown_cluster_get(organization=organization, cluster_id=cluster_id)
            removed = unknown_cluster_dismiss(organization=organization, cluster=cluster)
        except FacePortalError as exc:
            return self.unknown_view(request, object_id, error=exc)
        messages.success(request, f"Dismissed: {removed} face{'s' if removed != 1 else ''} deleted.")
        return HttpResponseRedirect(reverse("admin:organizations_organization_unknown", args=[organization.pk]))


def posted_form(request) -> QueryDict:
    """A form post's fields and files in one QueryDict, as a REST view's `request.data` holds them."""
    form = request.POST.copy()
    form.update(request.FILES)
    return form


def decision_summary(organization: Organization) -> dict:
    """What decides who gets a name for a request without a threshold of its own, in the words of a
    `POST /recognize` answer (threshold, threshold_source, false_match_rate, gallery_size), with the
    fallback that decides only for a model without calibration data."""
    decision = dict(DecisionInForceSerializer(decision_in_force(organization=organization)).data)
    rate = organization.false_match_rate
    return {
        **decision,
        "false_match_percent": f"{rate * 100:.3g}%",
        "uncalibrated_threshold": uncalibrated_threshold(),
    }


def organization_overview(organization: Organization) -> dict:
    """What the overview above the change form shows: counts, keys, traffic and decision settings."""
    per_day = requests_per_day(organization_id=organization.pk, days=14)
    peak = max((count for _, count in per_day), default=0) or 1
    keys = list(APIKey.objects.filter(organization=organization).order_by("revoked_at", "-last_used_at", "name"))
    return {
        "overview": {
            "people": Person.objects.filter(organization=organization).count(),
            "faces": Face.objects.filter(organization=organization).count(),
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
            "unknown_url": reverse("admin:organizations_organization_unknown", args=[organization.pk]),
            "unknown_faces": UnknownFace.objects.filter(organization=organization).count(),
            "people_url": reverse("admin:faces_person_changelist") + f"?organization__id__exact={organization.pk}",
            "keys_url": reverse("admin:apikeys_apikey_changelist") + f"?organization__id__exact={organization.pk}",
        }
    }
