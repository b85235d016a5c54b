"""`/orgs/{org}/webhooks`: thin views over recognition.webhooks.services and selectors."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apikeys.models import SCOPE_MANAGE
from apikeys.tenant_api import OrganizationScopedApi
from faceportal.openapi import API_KEY_AUTH, error_responses
from faceportal.serializers import ApiAuthBodySerializer
from recognition.webhooks.selectors import webhook_list, webhook_recent_deliveries
from recognition.webhooks.serializers import (
    WebhookCreatedOutputSerializer,
    WebhookCreateInputSerializer,
    WebhookDeliveryListOutputSerializer,
    WebhookListOutputSerializer,
)
from recognition.webhooks.services import webhook_create, webhook_delete, webhook_get

TAGS = ["webhooks"]
ERRORS = (400, 401, 403, 404, 429, 503)


class WebhookListApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(responses={200: WebhookListOutputSerializer, **error_responses(*ERRORS)},
                   summary="The organisation's webhooks (secrets are never shown)", operation_id="webhook_list",
                   tags=TAGS, auth=API_KEY_AUTH)
    def get(self, request, organization: str):
        hooks = webhook_list(organization=self.organization())
        return Response(WebhookListOutputSerializer({"results": hooks}).data)

    @extend_schema(request=WebhookCreateInputSerializer,
                   responses={201: WebhookCreatedOutputSerializer, **error_responses(*ERRORS)},
                   summary="Subscribe a URL to events", operation_id="webhook_create",
                   description="The URL must be http(s) and resolve to public addresses (unless the server allows "
                   "private ones). The answer shows the secret this once (docs/WEBHOOKS.md).",
                   tags=TAGS, auth=API_KEY_AUTH)
    def post(self, request, organization: str):
        data = self.validated_body(WebhookCreateInputSerializer)
        hook = webhook_create(organization=self.organization(), url=data["url"], events=data["events"],
                              secret=data["secret"])
        return Response(WebhookCreatedOutputSerializer(hook).data, status=status.HTTP_201_CREATED)


class WebhookDetailApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(request=ApiAuthBodySerializer, responses={204: None, **error_responses(*ERRORS)},
                   summary="Delete a webhook (its pending deliveries too)", operation_id="webhook_delete",
                   tags=TAGS, auth=API_KEY_AUTH)
    def delete(self, request, organization: str, webhook_id: int):
        self.validated_body()
        webhook_delete(webhook=webhook_get(organization=self.organization(), webhook_id=webhook_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class WebhookDeliveryListApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(responses={200: WebhookDeliveryListOutputSerializer, **error_responses(*ERRORS)},
                   summary="A webhook's recent deliveries, newest first", operation_id="webhook_delivery_list",
                   tags=TAGS, auth=API_KEY_AUTH)
    def get(self, request, organization: str, webhook_id: int):
        hook = webhook_get(organization=self.organization(), webhook_id=webhook_id)
        deliveries = webhook_recent_deliveries(webhook=hook)
        return Response(WebhookDeliveryListOutputSerializer({"results": deliveries}).data)
