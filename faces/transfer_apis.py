"""Gallery export (a key with the `manage` scope, or staff) and import (staff): docs/EXPORT.md."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.parsers import BaseParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import HasOrganizationKey
from apikeys.models import SCOPE_MANAGE
from apikeys.permissions import HasScope
from apikeys.tenant_api import OrganizationScopedApi
from faceportal.errors import InvalidInput, PayloadTooLarge
from faceportal.openapi import API_KEY_AUTH, STAFF_AUTH, error_responses
from faceportal.permissions import IsStaff
from faces.transfer import gallery_export_chunks, gallery_import
from organizations.selectors import organization_get


class ZipParser(BaseParser):
    """The import's body: the zip itself (`Content-Type: application/zip`), read as bytes."""

    media_type = "application/zip"

    def parse(self, stream, media_type=None, parser_context=None):
        return {"file": stream.read() if stream is not None else b""}


async def _streamed(pieces: Iterator[bytes]) -> AsyncIterator[bytes]:
    # Each piece is made in Django's sync thread (it reads the database), then sent at once:
    # the server never holds the whole file.
    step = sync_to_async(next, thread_sensitive=True)
    while (piece := await step(pieces, None)) is not None:
        if piece:
            yield piece


class ImportPersonOutputSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    name = serializers.CharField()
    external_id = serializers.CharField(allow_null=True)
    status = serializers.ChoiceField(choices=["created", "updated", "failed"])
    person_id = serializers.IntegerField(allow_null=True)
    faces_added = serializers.IntegerField()
    faces_skipped = serializers.IntegerField()
    faces_unusable = serializers.IntegerField()
    code = serializers.CharField(allow_null=True)
    reason = serializers.CharField(allow_null=True)


class ImportOutputSerializer(serializers.Serializer):
    organization = serializers.CharField()
    model_name = serializers.CharField(help_text="The model the file's embeddings came from")
    reembedded = serializers.BooleanField(help_text="True when that model is not ours: faces were re-embedded "
                                          "from their crops")
    faces_added = serializers.IntegerField()
    people = ImportPersonOutputSerializer(many=True)


class GalleryExportApi(OrganizationScopedApi):
    # The organisation's own key with `manage`, or staff.
    permission_classes = [(HasOrganizationKey & HasScope) | IsStaff]
    required_scope = SCOPE_MANAGE

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY,
                              **error_responses(401, 403, 404, 429, 503)},
                   summary="Export the gallery (zip: manifest, crops, embeddings)", operation_id="gallery_export",
                   description="Streams a zip: `manifest.json` (format version, model and detector, people with "
                   "their external_id and metadata) and each face's crop (JPEG) and embedding. POST it to "
                   "/orgs/{organization}/import, or give it to `manage.py import_org`.",
                   tags=["faces"], auth=[*API_KEY_AUTH, *STAFF_AUTH])
    def get(self, request, organization: str):
        pieces = gallery_export_chunks(organization=self.organization())
        # An ASGI server (daphne) sends each piece as it is made; a WSGI one iterates the pieces itself.
        content = _streamed(pieces) if isinstance(request._request, ASGIRequest) else pieces
        response = StreamingHttpResponse(content, content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{organization}-gallery.zip"'
        response["Cache-Control"] = "no-store"
        return response


class GalleryImportApi(APIView):
    """Staff only, like the other provisioning routes: not a tenant data route, so no key reaches it."""

    permission_classes = [IsStaff]
    parser_classes = [ZipParser]

    @extend_schema(request={"application/zip": OpenApiTypes.BINARY},
                   responses={200: ImportOutputSerializer, **error_responses(400, 401, 403, 404, 413, 415, 429, 503)},
                   summary="Import a gallery file (staff only)", operation_id="gallery_import",
                   description="Reads a file made by the export into this organisation. The embeddings are used "
                   "when the file's model is ours; otherwise every face is re-embedded from its crop. A person "
                   "whose external_id (or, without one, name) already exists is updated, not duplicated, and "
                   "faces they already have are skipped. The whole file is checked first (member names, sizes, "
                   "compression ratio, manifest): a refused file writes nothing. Each person's outcome is in "
                   "`people`.",
                   tags=["faces"], auth=STAFF_AUTH)
    def post(self, request, organization: str):
        org = organization_get(slug=organization)
        data = request.data.get("file", b"")
        if not data:
            raise InvalidInput("Send the gallery zip as the body (Content-Type: application/zip).",
                               details={"field": "file"}, code="invalid_archive")
        if len(data) > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise PayloadTooLarge("The gallery file exceeds the request size limit.")
        result = gallery_import(organization=org, data=io.BytesIO(data))
        payload = {"organization": result.organization, "model_name": result.model_name,
                   "reembedded": result.reembedded, "faces_added": result.faces_added,
                   "people": [vars(person) for person in result.people]}
        return Response(ImportOutputSerializer(payload).data)
