"""The base view of tenant data routes, whichever app owns the route: the key's organisation
must be the URL's, a body's `api_auth` (when given) must name the key used, and every call is
counted for the staff overview. It lives with the keys because a key is what scopes a request to
its tenant; faces and recognition build their routes on it."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers
from rest_framework.views import APIView

from apikeys.authentication import HasOrganizationKey, check_api_auth_body, request_key
from apikeys.permissions import HasScope
from apikeys.services import AuthenticatedKey
from faceportal.serializers import ApiAuthBodySerializer, RequestSerializer, validated
from organizations.models import Organization
from organizations.selectors import organization_get
from organizations.usage import request_count_increment


class OrganizationScopedApi(APIView):
    """Base for data routes: the key's organisation must be the URL's, it must hold the route's
    `required_scope` (`recognize`, `enrol` or `manage`; every subclass sets one), and `api_auth`
    must match."""

    # The organisation first: a key of another organisation learns nothing about scopes here.
    permission_classes = [HasOrganizationKey, HasScope]
    required_scope: str | None = None

    def finalize_response(self, request, response, *args, **kwargs):
        # `_auth` is set only once authentication ran: reading `request.auth` here could run it
        # again, after it (or the database) already failed.
        key = getattr(request, "_auth", None)
        if isinstance(key, AuthenticatedKey) and key.organization_slug == self.kwargs.get("organization"):
            # Requests per day for the staff overview: authenticated calls to the key's own tenant.
            request_count_increment(organization_id=key.organization_id)
        return super().finalize_response(request, response, *args, **kwargs)

    def organization(self) -> Organization:
        return organization_get(slug=self.kwargs["organization"])

    def validated_body(self, serializer_class: type[RequestSerializer] = ApiAuthBodySerializer) -> dict[str, Any]:
        """The request body (JSON or multipart) validated by `serializer_class`, its `api_auth` checked."""
        data = validated(serializer_class, data=self.request.data)
        check_api_auth_body(key=request_key(self.request), api_auth=data.get("api_auth"))
        return data

    def validated_query(self, serializer_class: type[serializers.Serializer]) -> dict[str, Any]:
        return validated(serializer_class, data=self.request.query_params)
