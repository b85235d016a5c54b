from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import faceportal.openapi  # noqa: F401  registers the API-key security schemes for the schema
from apikeys.apis import ApiKeyApi
from faceportal import views as site_views
from faces.apis import (
    FaceDetailApi,
    PersonDetailApi,
    PersonListApi,
    RegisterApi,
)
from organizations.apis import OrganizationCreateApi
from recognition import views as recognition_views
from recognition.apis import RecognizeApi, VerifyApi

urlpatterns = [
    path("", site_views.landing, name="landing"),
    path("demo/", recognition_views.webcam, name="webcam"),
    path("healthz", site_views.healthz, name="healthz"),
    path("readyz", site_views.readyz, name="readyz"),
    path("metrics", site_views.metrics, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("admin/", admin.site.urls),
    path("orgs", OrganizationCreateApi.as_view(), name="org-create"),
    path("orgs/<str:organization>/api-key", ApiKeyApi.as_view(), name="api-key"),
    path("register/<str:organization>", RegisterApi.as_view(), name="register"),
    path("recognize/<str:organization>", RecognizeApi.as_view(), name="recognize"),
    path("verify/<str:organization>", VerifyApi.as_view(), name="verify"),
    path("orgs/<str:organization>/people", PersonListApi.as_view(), name="person-list"),
    path("orgs/<str:organization>/people/<int:person_id>", PersonDetailApi.as_view(), name="person-detail"),
    path(
        "orgs/<str:organization>/people/<int:person_id>/faces/<int:face_id>",
        FaceDetailApi.as_view(),
        name="face-detail",
    ),
]

handler400 = "faceportal.errors.json_400"
handler403 = "faceportal.errors.json_403"
handler404 = "faceportal.errors.json_404"
handler500 = "faceportal.errors.json_500"
