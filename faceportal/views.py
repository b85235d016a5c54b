"""Landing page, health checks and metrics."""

from __future__ import annotations

import re

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.decorators import api_view, authentication_classes, permission_classes, throttle_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from faceportal import metrics as faceportal_metrics
from faceportal.errors import error_payload
from faceportal.health import readiness
from faceportal.openapi import NOT_READY_EXAMPLE, ErrorSerializer, HealthSerializer, ReadinessSerializer
from organizations.models import SLUG_PATTERN

_SLUG = re.compile(SLUG_PATTERN)


def landing(request):
    from organizations.models import DEFAULT_FALSE_MATCH_RATE

    organization = request.GET.get("org", "")
    return render(
        request,
        "landing.html",
        {
            "model": settings.DEEPFACE_EMBEDDER_MODEL,
            "detector": settings.DEEPFACE_DETECTOR_BACKEND,
            "vector_store": settings.FACEPORTAL_VECTOR_STORE,
            "false_match_percent": f"{DEFAULT_FALSE_MATCH_RATE * 100:.3g}%",
            # The snippets use this server's own address and the visitor's organisation (?org=acme).
            "base_url": request.build_absolute_uri("/").rstrip("/"),
            "organization": organization if _SLUG.match(organization) else "acme",
        },
    )


@extend_schema(
    tags=["operations"],
    auth=[],
    summary="Liveness: the process answers",
    operation_id="healthz",
    responses={200: HealthSerializer},
)
@api_view(["GET"])
@authentication_classes([])  # probes carry no credentials and are never throttled
@permission_classes([AllowAny])
@throttle_classes([])
def healthz(request):
    return Response({"status": "ok"})


@extend_schema(
    tags=["operations"],
    auth=[],
    summary="Readiness: database, cache, vector store and face models", operation_id="readyz",
    responses={
        200: ReadinessSerializer,
        503: OpenApiResponse(
            ErrorSerializer,
            description="Not ready; `details.not_ready` names the failing checks.",
            examples=[OpenApiExample("Redis down", value=NOT_READY_EXAMPLE, response_only=True, status_codes=["503"])],
        ),
    },
)
@api_view(["GET"])
@authentication_classes([])  # probes carry no credentials and are never throttled
@permission_classes([AllowAny])
@throttle_classes([])
def readyz(request):
    results = readiness()
    checks = {name: {"ready": result.ready, "detail": result.detail} for name, result in results.items()}
    not_ready = [name for name, result in results.items() if not result.ready]
    if not_ready:
        payload = error_payload(
            code="not_ready",
            message=f"Not ready: {', '.join(not_ready)}.",
            details={"not_ready": not_ready, "checks": checks},
        )
        return Response(payload, status=503)
    return Response({"status": "ready", "checks": checks})


def metrics(request):
    body, content_type = faceportal_metrics.exposition()
    return HttpResponse(body, content_type=content_type)
