"""Reads on kept unknown faces, always scoped to one organisation."""

from __future__ import annotations

from django.db.models import QuerySet

from faceportal.errors import NotFound
from faces.models import UnknownFace
from faces.unknowns.clustering import Cluster, unknown_grouping
from organizations.models import Organization


def unknown_face_list(*, organization: Organization, cluster_id: int | None = None) -> QuerySet[UnknownFace]:
    """Newest first; only one cluster's faces when `cluster_id` is given (404 when no such cluster)."""
    queryset = UnknownFace.objects.filter(organization=organization).defer("embedding", "crop")
    if cluster_id is not None:
        queryset = queryset.filter(id__in=unknown_cluster_get(organization=organization,
                                                              cluster_id=cluster_id).face_ids)
    return queryset.order_by("-seen_at", "-id")


def unknown_face_get(*, organization: Organization, unknown_id: int) -> UnknownFace:
    # The same answer for "no such id" and "another organisation's id".
    unknown = UnknownFace.objects.filter(organization=organization, pk=unknown_id).first()
    if unknown is None:
        raise NotFound("Unknown face not found.", code="unknown_face_not_found")
    return unknown


def unknown_cluster_list(*, organization: Organization) -> list[Cluster]:
    return unknown_grouping(organization=organization).clusters


def unknown_cluster_get(*, organization: Organization, cluster_id: int) -> Cluster:
    cluster = unknown_grouping(organization=organization).cluster(cluster_id)
    if cluster is None:
        raise NotFound("Unknown-face cluster not found.", code="unknown_cluster_not_found")
    return cluster
