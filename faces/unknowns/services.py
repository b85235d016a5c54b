"""Writes on kept unknown faces: keeping them from recognition, deleting, purging.

Recognition calls `unknown_faces_keep` after deciding; it inserts rows and bumps the organisation's
change counter, nothing more, so keeping never waits on grouping (unknowns.clustering).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apikeys.services import AuthenticatedKey
from faceportal.errors import NotFound
from faces import quality
from faces.engine.base import DetectedFace, EmbeddedFace, FaceBox
from faces.index.base import vector_to_bytes
from faces.models import Person, UnknownFace, UnknownState
from faces.services import ImageOutcome, person_register_embedded
from faces.unknowns.clustering import Cluster
from organizations.models import Organization

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UnknownCandidate:
    """A face recognition decided `unknown`, with what keeping it needs."""

    embedded: EmbeddedFace
    box: dict[str, int]  # in the image as sent


def unknowns_changed(*, organization_id: int) -> None:
    """Bump the change counter: a cached grouping of this organisation is stale from now on."""
    updated = UnknownState.objects.filter(organization_id=organization_id).update(version=F("version") + 1)
    if not updated:
        UnknownState.objects.get_or_create(organization_id=organization_id)
        UnknownState.objects.filter(organization_id=organization_id).update(version=F("version") + 1)


def unknown_faces_keep(
    *, organization: Organization, pixels: np.ndarray, candidates: list[UnknownCandidate], model_name: str,
    seen_by: AuthenticatedKey | None, source: str,
) -> list[int | None]:
    """Keep each candidate that passes the enrolment quality gates; its id, or None when not kept.

    The caller has decided they are unknown at the organisation's own decision and checked that
    the organisation keeps unknowns. The newest `unknown_max_kept` stay; older ones go at once.
    """
    kept: list[int | None] = []
    rows: list[UnknownFace] = []
    for candidate in candidates:
        verdict = quality.assess(pixels, candidate.embedded.detection)
        if verdict.reason is not None or not candidate.embedded.crop_jpeg:
            kept.append(None)
            continue
        rows.append(UnknownFace(
            organization=organization, model_name=model_name,
            embedding=vector_to_bytes(candidate.embedded.embedding), crop=candidate.embedded.crop_jpeg,
            box=candidate.box, detection_confidence=float(candidate.embedded.detection.confidence),
            quality=verdict.measures, api_key_id=seen_by.key_id if seen_by else None,
            api_key_name=seen_by.name if seen_by else "", source=source,
        ))
        kept.append(-1)
    if not rows:
        return kept
    with transaction.atomic():
        created = UnknownFace.objects.bulk_create(rows)
        _trim_to_cap(organization=organization)
        unknowns_changed(organization_id=organization.pk)
    ids = iter(row.pk for row in created)
    return [next(ids) if value == -1 else None for value in kept]


def _trim_to_cap(*, organization: Organization) -> None:
    cap = organization.unknown_max_kept
    over = list(UnknownFace.objects.filter(organization=organization).order_by("-seen_at", "-id")
                .values_list("id", flat=True)[cap:cap + 10_000])
    if over:
        UnknownFace.objects.filter(organization=organization, id__in=over).delete()


def unknown_face_delete(*, unknown: UnknownFace) -> None:
    with transaction.atomic():
        unknown.delete()
        unknowns_changed(organization_id=unknown.organization_id)


def unknown_faces_delete(*, organization: Organization, ids: list[int] | None = None) -> int:
    """Delete the organisation's kept unknowns (those of `ids`, or all); how many went."""
    with transaction.atomic():
        queryset = UnknownFace.objects.filter(organization=organization)
        if ids is not None:
            queryset = queryset.filter(id__in=ids)
        deleted, _ = queryset.delete()
        if deleted:
            unknowns_changed(organization_id=organization.pk)
    return deleted


def unknown_faces_purge(*, now=None) -> int:
    """Delete every organisation's unknowns older than its retention, and those over its cap."""
    now = now or timezone.now()
    total = 0
    for organization in Organization.objects.filter(unknown_faces__isnull=False).distinct():
        cutoff = now - timedelta(days=organization.unknown_retention_days)
        with transaction.atomic():
            deleted, _ = UnknownFace.objects.filter(organization=organization, seen_at__lt=cutoff).delete()
            before = UnknownFace.objects.filter(organization=organization).count()
            _trim_to_cap(organization=organization)
            deleted += before - UnknownFace.objects.filter(organization=organization).count()
            if deleted:
                unknowns_changed(organization_id=organization.pk)
        total += deleted
    if total:
        logger.info("expired unknown faces purged", extra={"deleted": total})
    return total


@dataclass(frozen=True)
class AssignedFace:
    unknown_face: int
    accepted: bool
    face_id: int | None
    code: str | None
    reason: str | None


@dataclass(frozen=True)
class ClusterAssignment:
    person: Person
    created: bool
    faces_added: int
    faces: list[AssignedFace]


def unknown_cluster_assign(
    *, organization: Organization, cluster: Cluster, name: str | None = None, person: Person | None = None,
    allow_duplicate: bool = False,
) -> ClusterAssignment:
    """Make a cluster's faces a person's faces: a new person `name` (or the existing one of that
    name), or `person`. Registration's rules apply (faces.services.person_register_embedded): a face
    the person already has is skipped, a face matching somebody else refuses the whole cluster
    (409) unless `allow_duplicate`. The assigned faces leave the inbox in the same transaction."""
    unknowns = list(UnknownFace.objects.filter(organization=organization, id__in=cluster.face_ids)
                    .order_by("seen_at", "id"))
    if not unknowns:
        raise NotFound("Unknown-face cluster not found.", code="unknown_cluster_not_found")
    accepted = []
    for index, unknown in enumerate(unknowns):
        box = FaceBox(**unknown.box)
        embedded = EmbeddedFace(detection=DetectedFace(box=box, confidence=unknown.detection_confidence),
                                embedding=unknown.vector, crop_jpeg=bytes(unknown.crop))
        outcome = ImageOutcome(index=index, accepted=True, box=unknown.box, faces_detected=1,
                               detection_confidence=round(unknown.detection_confidence, 4), quality=unknown.quality)
        accepted.append((outcome, embedded))

    def leave_inbox(outcomes: list[ImageOutcome]) -> None:
        done = [unknowns[o.index].pk for o in outcomes if o.accepted or o.code == "duplicate_image"]
        UnknownFace.objects.filter(organization=organization, id__in=done).delete()
        unknowns_changed(organization_id=organization.pk)

    result = person_register_embedded(organization=organization, name=person.name if person else name,
                                      accepted=accepted, allow_duplicate=allow_duplicate, on_stored=leave_inbox)
    faces = [AssignedFace(unknown_face=unknowns[o.index].pk, accepted=o.accepted, face_id=o.face_id, code=o.code,
                          reason=o.reason) for o in result.outcomes]
    logger.info("unknown cluster assigned", extra={"organization": organization.slug,
                                                    "person_id": result.person.pk, "faces": result.accepted_count})
    return ClusterAssignment(person=result.person, created=result.created, faces_added=result.accepted_count,
                             faces=faces)


def unknown_cluster_dismiss(*, organization: Organization, cluster: Cluster) -> int:
    """Not a person of interest: the cluster's faces leave the inbox without enrolling anyone."""
    return unknown_faces_delete(organization=organization, ids=cluster.face_ids)
