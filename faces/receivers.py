"""faces owns its vector store, so it listens to organisation lifecycle rather than being called."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from faces.index import VectorStoreUnavailable, get_index
from organizations.signals import organization_created, organization_deleted

logger = logging.getLogger(__name__)


@receiver(organization_created)
def create_organization_index(sender, organization, **kwargs) -> None:
    from faces.engine import get_engine

    try:
        get_index().ensure_organization(organization_id=organization.pk, dimension=get_engine().dimension)
    except Exception:  # registration retries ensure_organization; creation must not fail on it
        logger.exception("could not create vector index", extra={"organization": organization.slug})


@receiver(organization_deleted)
def drop_organization_index(sender, organization, **kwargs) -> None:
    try:
        get_index().drop_organization(organization_id=organization.pk)
    except VectorStoreUnavailable:
        # The rows are gone already (the source of truth); `manage.py vectors repair` drops the rest.
        logger.warning(
            "vectors of a deleted organisation left for repair",
            extra={"organization": organization.slug, "organization_id": organization.pk},
        )
