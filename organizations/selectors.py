from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

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


def organization_list_with_counts() -> QuerySet[Organization]:
    """Every organisation (active or not) with its people, faces and active keys counted, one
    subquery each (a join of all three would multiply the rows)."""
    # Imported here: those apps build on organizations, not the other way round.
    from apikeys.models import APIKey
    from faces.models import Face, Person

    def count_of(model, **filters) -> Coalesce:
        rows = model.objects.filter(organization=OuterRef("pk"), **filters).order_by()
        counted = rows.values("organization").annotate(n=Count("pk")).values("n")
        return Coalesce(Subquery(counted, output_field=IntegerField()), Value(0))

    return Organization.objects.annotate(
        people_count=count_of(Person),
        face_count=count_of(Face),
        api_key_count=count_of(APIKey, revoked_at__isnull=True),
    ).order_by("slug")
