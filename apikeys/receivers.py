"""apikeys keeps its key cache in step with the organisation lifecycle, told by organizations' signals."""

from __future__ import annotations

from django.dispatch import receiver

from apikeys.services import api_key_cache_forget_organization, api_key_cache_revive_organization
from organizations.signals import organization_deactivated, organization_deleting, organization_reactivated


@receiver(organization_deactivated)
@receiver(organization_deleting)
def forget_cached_keys(sender, organization, **kwargs) -> None:
    # Sent inside the caller's transaction: the keys are read now, evicted once it commits.
    api_key_cache_forget_organization(organization=organization)


@receiver(organization_reactivated)
def revive_cached_keys(sender, organization, **kwargs) -> None:
    api_key_cache_revive_organization(organization=organization)
