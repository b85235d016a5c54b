"""`/api/schema/`, built and rendered once per process for each format, language and version.

Building the schema walks every view and serializer (hundreds of milliseconds of CPU), and the
route is open to anonymous clients, so serving it fresh each time let a few of them slow every
tenant. The schema only changes with the code (or with settings, which clears the cache).
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpResponse
from django.utils import translation
from drf_spectacular.settings import patched_settings
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SCHEMA_KWARGS, SpectacularAPIView

_rendered_schemas: dict[tuple, tuple[bytes, str, str]] = {}
_schema_lock = threading.Lock()


class CachedSchemaView(SpectacularAPIView):
    @extend_schema(**SCHEMA_KWARGS)  # as the parent's: how the schema route itself is described
    def get(self, request, *args, **kwargs):
        language = _supported_language(request.GET.get("lang"))
        version = self.api_version or request.version or self._get_version_parameter(request)
        renderer = request.accepted_renderer
        # Only bounded values in the key: the renderer's own media type, never the client's Accept text.
        key = (renderer.format, renderer.media_type, language, version)
        cached = _rendered_schemas.get(key)
        if cached is None:
            with _schema_lock:  # concurrent first requests build it once
                cached = _rendered_schemas.get(key)
                if cached is None:
                    cached = _rendered_schemas[key] = self._render(request, language=language)
        content, content_type, disposition = cached
        return HttpResponse(content, content_type=content_type, headers={"Content-Disposition": disposition})

    def _render(self, request, *, language: str) -> tuple[bytes, str, str]:
        with patched_settings(self.custom_settings), translation.override(language):
            response = self._get_schema_response(request)
            response.accepted_renderer = request.accepted_renderer
            response.accepted_media_type = request.accepted_renderer.media_type
            response.renderer_context = self.get_renderer_context()
            response.render()
        return response.content, response["Content-Type"], response["Content-Disposition"]


def _supported_language(requested: str | None) -> str:
    """A `?lang=` Django supports (as its variant), else the default: any text would be a new cache key."""
    if requested:
        try:
            return translation.get_supported_language_variant(requested)
        except LookupError:
            pass
    return settings.LANGUAGE_CODE


@receiver(setting_changed)
def _forget_rendered_schemas(**kwargs) -> None:
    _rendered_schemas.clear()
