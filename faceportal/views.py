"""Landing page, health checks and metrics (filled in by the ship-it issue)."""

from django.http import HttpResponse, JsonResponse


def landing(request):
    return HttpResponse("FacePortal")


def healthz(request):
    return JsonResponse({"status": "ok"})


def readyz(request):
    return JsonResponse({"status": "ok"})


def metrics(request):
    return HttpResponse("", content_type="text/plain")
