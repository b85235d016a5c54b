"""What the console reads across apps: organisations with what the other apps hold of them."""

from __future__ import annotations

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce

from apikeys.models import APIKey
from faces.models import Face, Person
from organizations.models import Organization


def count_per_organization(model, **filters):
    """A correlated COUNT per organisation: separate subqueries, so the counts never multiply
    each other as joins of keys x people x faces would."""
    counted = (
        model.objects.filter(organization=OuterRef("pk"), **filters)
        .order_by()
        .values("organization")
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def organization_list_with_counts() -> QuerySet[Organization]:
    """Every organisation (active or not) with its people, faces and keys not revoked."""
    return Organization.objects.annotate(
        people_count=count_per_organization(Person),
        face_count=count_per_organization(Face),
        api_key_count=count_per_organization(APIKey, revoked_at__isnull=True),
    ).order_by("slug")
