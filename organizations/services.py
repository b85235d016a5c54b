from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from faceportal.errors import Conflict, InvalidInput
from organizations.models import SLUG_MAX_LENGTH, SLUG_PATTERN, Organization
from organizations.signals import organization_created, organization_deleted

_SLUG_RE = re.compile(SLUG_PATTERN)


def validate_slug(slug: object) -> str:
    if not isinstance(slug, str) or not slug:
        raise InvalidInput("'organization' must be a non-empty string.", details={"field": "organization"})
    if len(slug) > SLUG_MAX_LENGTH:
        raise InvalidInput(
            f"'organization' must be at most {SLUG_MAX_LENGTH} characters.", details={"field": "organization"}
        )
    if not _SLUG_RE.match(slug):
        raise InvalidInput(
            "'organization' may only contain a-z, 0-9, '-' and '_'.", details={"field": "organization"}
        )
    return slug


def organization_create(*, slug: str, name: str | None = None) -> Organization:
    slug = validate_slug(slug)
    try:
        with transaction.atomic():
            organization = Organization.objects.create(slug=slug, name=name or slug)
    except IntegrityError as exc:
        raise Conflict(f"Organization '{slug}' already exists.", code="organization_exists") from exc
    organization_created.send(sender=Organization, organization=organization)
    return organization


def organization_deactivate(*, organization: Organization) -> Organization:
    organization.is_active = False
    organization.save(update_fields=["is_active"])
    # Keys of an inactive organisation must stop working at once, cached or not.
    from apikeys.services import api_key_cache_forget_organization

    api_key_cache_forget_organization(organization=organization)
    return organization


def organization_delete(*, organization: Organization) -> None:
    """Delete a tenant completely: keys, people, faces (database) and its vectors (via signal)."""
    from apikeys.services import api_key_cache_forget_organization

    api_key_cache_forget_organization(organization=organization)
    slug = organization.slug
    pk = organization.pk
    with transaction.atomic():
        organization.delete()
    organization.pk = pk
    organization.slug = slug
    organization_deleted.send(sender=Organization, organization=organization)
