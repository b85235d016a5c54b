"""The webcam page: a static shell; everything it shows comes over the WebSocket and the REST API."""

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_GET


@require_GET
def webcam(request):
    response = render(
        request,
        "recognition/webcam.html",
        {
            "model": settings.DEEPFACE_EMBEDDER_MODEL,
            "detector": settings.DEEPFACE_DETECTOR_BACKEND,
            "max_fps": settings.FACEPORTAL_WS_MAX_FPS,
        },
    )
    # The page holds an API key in memory: never let it be cached or leak through a referrer.
    response["Cache-Control"] = "no-store"
    response["Referrer-Policy"] = "no-referrer"
    return response
