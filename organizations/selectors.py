from __future__ import annotations

from faceportal.errors import NotFound
from organizations.models import Organization


def organization_get(*, slug: str, active_only: bool = True) -> Organization:
    queryset = Organization.objects.all()
    if active_only:
        queryset = queryset.filter(is_active=True)
    organization = queryset.filter(slug=slug).first()
    if organization is None:
        raise NotFound(f"Organization '{slug}' does not exist.", code="organization_not_found")
    return organization

