"""The webcam page (filled in by the real-time issue)."""

from django.http import HttpResponse


def webcam(request):
    return HttpResponse("webcam")
