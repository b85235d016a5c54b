from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularSwaggerView

import faceportal.openapi  # noqa: F401  registers the API-key security schemes for the schema
from apikeys.apis import ApiKeyApi, ApiKeyListApi, ApiKeyRotateApi
from console.apis import OrganizationListCreateApi
from faceportal import views as site_views
from faceportal.schema_view import CachedSchemaView
from faces.apis import (
    FaceDetailApi,
    FaceMoveApi,
    FaceThumbnailApi,
    PersonDetailApi,
    PersonListApi,
    PersonMergeApi,
    RegisterApi,
)
from faces.job_apis import EnrolmentJobDetailApi, EnrolmentJobListApi
from faces.transfer_apis import GalleryExportApi, GalleryImportApi
from faces.unknowns.apis import (
    UnknownClusterAssignApi,
    UnknownClusterDismissApi,
    UnknownClusterListApi,
    UnknownFaceDetailApi,
    UnknownFaceListApi,
    UnknownFaceThumbnailApi,
)
from organizations.apis import OrganizationDetailApi
from recognition import views as recognition_views
from recognition.apis import RecognizeApi, VerifyApi
from recognition.webhooks.apis import WebhookDeliveryListApi, WebhookDetailApi, WebhookListApi


def slash_alias(view):
    """The same view under a trailing-slash route (`/recognize/acme/`), for clients that add one.

    A plain function wrapping the DRF view, so the OpenAPI schema lists each route once."""

    def aliased(request, *args, **kwargs):
        return view(request, *args, **kwargs)

    aliased.csrf_exempt = True  # as the DRF view itself: API routes authenticate by key, not cookie
    return aliased


def api_route(route: str, view, name: str) -> list:
    # The alias comes first so that reverse() (which prefers the last pattern of a name) gives the canonical form.
    return [path(route + "/", slash_alias(view), name=name), path(route, view, name=name)]


api_routes = [
    *api_route("orgs", OrganizationListCreateApi.as_view(), "org-create"),
    *api_route("orgs/<str:organization>", OrganizationDetailApi.as_view(), "org-detail"),
    *api_route("orgs/<str:organization>/api-key", ApiKeyApi.as_view(), "api-key"),
    *api_route("orgs/<str:organization>/api-keys", ApiKeyListApi.as_view(), "api-key-list"),
    *api_route("orgs/<str:organization>/api-keys/<int:key_id>/rotate", ApiKeyRotateApi.as_view(), "api-key-rotate"),
    *api_route("register/<str:organization>", RegisterApi.as_view(), "register"),
    *api_route("recognize/<str:organization>", RecognizeApi.as_view(), "recognize"),
    *api_route("verify/<str:organization>", VerifyApi.as_view(), "verify"),
    *api_route("orgs/<str:organization>/people", PersonListApi.as_view(), "person-list"),
    *api_route("orgs/<str:organization>/people/<int:person_id>", PersonDetailApi.as_view(), "person-detail"),
    *api_route("orgs/<str:organization>/people/<int:person_id>/faces/<int:face_id>", FaceDetailApi.as_view(),
               "face-detail"),
    *api_route("orgs/<str:organization>/people/<int:person_id>/merge", PersonMergeApi.as_view(), "person-merge"),
    *api_route("orgs/<str:organization>/people/<int:person_id>/faces/<int:face_id>/move", FaceMoveApi.as_view(),
               "face-move"),
    *api_route("orgs/<str:organization>/people/<int:person_id>/faces/<int:face_id>/thumbnail",
               FaceThumbnailApi.as_view(), "face-thumbnail"),
    *api_route("orgs/<str:organization>/unknown-faces", UnknownFaceListApi.as_view(), "unknown-face-list"),
    *api_route("orgs/<str:organization>/unknown-faces/<int:unknown_id>", UnknownFaceDetailApi.as_view(),
               "unknown-face-detail"),
    *api_route("orgs/<str:organization>/unknown-faces/<int:unknown_id>/thumbnail",
               UnknownFaceThumbnailApi.as_view(), "unknown-face-thumbnail"),
    *api_route("orgs/<str:organization>/unknown-clusters", UnknownClusterListApi.as_view(), "unknown-cluster-list"),
    *api_route("orgs/<str:organization>/unknown-clusters/<int:cluster_id>/assign",
               UnknownClusterAssignApi.as_view(), "unknown-cluster-assign"),
    *api_route("orgs/<str:organization>/unknown-clusters/<int:cluster_id>/dismiss",
               UnknownClusterDismissApi.as_view(), "unknown-cluster-dismiss"),
    *api_route("orgs/<str:organization>/webhooks", WebhookListApi.as_view(), "webhook-list"),
    *api_route("orgs/<str:organization>/webhooks/<int:webhook_id>", WebhookDetailApi.as_view(), "webhook-detail"),
    *api_route("orgs/<str:organization>/webhooks/<int:webhook_id>/deliveries", WebhookDeliveryListApi.as_view(),
               "webhook-delivery-list"),
    *api_route("orgs/<str:organization>/enrolment-jobs", EnrolmentJobListApi.as_view(), "enrolment-job-list"),
    *api_route("orgs/<str:organization>/enrolment-jobs/<int:job_id>", EnrolmentJobDetailApi.as_view(),
               "enrolment-job-detail"),
    *api_route("orgs/<str:organization>/export", GalleryExportApi.as_view(), "gallery-export"),
    *api_route("orgs/<str:organization>/import", GalleryImportApi.as_view(), "gallery-import"),
]

urlpatterns = [
    path("", site_views.landing, name="landing"),
    path("demo/", recognition_views.webcam, name="webcam"),
    path("healthz", site_views.healthz, name="healthz"),
    path("readyz", site_views.readyz, name="readyz"),
    path("metrics", site_views.metrics, name="metrics"),
    path("api/schema/", CachedSchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
    *api_routes,
]

handler400 = "faceportal.errors.json_400"
handler403 = "faceportal.errors.json_403"
handler404 = "faceportal.errors.json_404"
handler500 = "faceportal.errors.json_500"
