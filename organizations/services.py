from __future__ import annotations

import re

from django.db import IntegrityError, transaction

from faceportal.errors import Conflict, InvalidInput
from faceportal.text import NameRefused, display_name_clean
from organizations.models import SLUG_MAX_LENGTH, SLUG_PATTERN, Organization
from organizations.signals import (
    organization_created,
    organization_deactivated,
    organization_deleted,
    organization_deleting,
    organization_reactivated,
)

_SLUG_RE = re.compile(SLUG_PATTERN)


def validate_slug(slug: object) -> str:
    if not isinstance(slug, str) or not slug:
        raise InvalidInput("'organization' must be a non-empty string.", details={"field": "organization"})
    if len(slug) > SLUG_MAX_LENGTH:
        raise InvalidInput(
            f"'organization' must be at most {SLUG_MAX_LENGTH} characters.", details={"field": "organization"}
        )
    if not _SLUG_RE.fullmatch(slug):  # fullmatch: '$' alone would let "acme\n" through
        raise InvalidInput(
            "'organization' may only contain a-z, 0-9, '-' and '_'.", details={"field": "organization"}
        )
    return slug


def organization_create(*, slug: str, name: str | None = None) -> Organization:
    slug = validate_slug(slug)
    if name:
        try:
            name = display_name_clean(name)
        except NameRefused as refused:
            raise InvalidInput(f"'name': {refused}", details={"field": "name"}) from None
    try:
        with transaction.atomic():
            organization = Organization.objects.create(slug=slug, name=name or slug)
    except IntegrityError as exc:
        raise Conflict(f"Organization '{slug}' already exists.", code="organization_exists") from exc
    organization_created.send(sender=Organization, organization=organization)
    return organization


def organization_deactivate(*, organization: Organization) -> Organization:
    with transaction.atomic():
        organization.is_active = False
        organization.save(update_fields=["is_active"])
        # Keys of an inactive organisation must stop working at once, cached or not: apikeys
        # evicts them once this commits, so no request can re-cache them from the still-active row.
        organization_deactivated.send(sender=Organization, organization=organization)
    return organization


def organization_update(*, organization: Organization, is_active: bool | None = None, **changes) -> Organization:
    """Set the fields given (validated by `OrganizationUpdateInputSerializer`); deactivating goes
    through `organization_deactivate`, so the keys stop working at once."""
    with transaction.atomic():
        fields = [name for name in changes if getattr(organization, name) != changes[name]]
        for name in fields:
            setattr(organization, name, changes[name])
        reactivated = is_active is True and not organization.is_active
        if reactivated:
            organization.is_active = True
            fields.append("is_active")
        if fields:
            organization.save(update_fields=fields)
        if reactivated:
            # Deactivation left tombstones in the key cache; its keys work again once this commits.
            organization_reactivated.send(sender=Organization, organization=organization)
        if is_active is False and organization.is_active:
            organization_deactivate(organization=organization)
    return organization


def organization_delete(*, organization: Organization) -> None:
    """Delete a tenant completely: keys, people, faces (database) and its vectors (via signal).

    The admin's deletes come here too (organizations/admin.py). Cache eviction (apikeys, on
    `organization_deleting`) and the vectors' removal (faces, on `organization_deleted`) happen
    after the commit: evicted earlier, a key could be re-cached from the not-yet-deleted row and
    keep working for the cache TTL; dropped earlier, a rolled-back delete would lose its vectors.
    """
    gone = Organization(pk=organization.pk, slug=organization.slug, name=organization.name)
    with transaction.atomic():
        # Locked first, so a key issued meanwhile waits and then fails, or is read by the receivers.
        Organization.objects.select_for_update().filter(pk=organization.pk).exists()
        organization_deleting.send(sender=Organization, organization=organization)
        organization.delete()
        transaction.on_commit(
            lambda: organization_deleted.send(sender=Organization, organization=gone), robust=True
        )
    organization.pk = gone.pk
    organization.slug = gone.slug
