"""Subscribing, unsubscribing, and firing events. Firing only writes delivery rows (one insert per
subscribed webhook); the sending is the delivery runner's (`recognition.webhooks.delivery`), never
the request's or the frame's."""

from __future__ import annotations

import json
import logging
import time
import uuid
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from faceportal.errors import InvalidInput, NotFound
from faces.decision import SOURCE_CALIBRATED
from organizations.models import Organization
from recognition.models import (
    EVENT_FACE_RECOGNIZED,
    EVENT_FACE_UNKNOWN,
    MAX_WEBHOOKS_PER_ORGANIZATION,
    WEBHOOK_EVENTS,
    Webhook,
    WebhookDelivery,
)
from recognition.webhooks.targets import TargetRefused, parse_target, resolve_target

logger = logging.getLogger(__name__)


def webhook_create(*, organization: Organization, url: str, events: list[str], secret: str) -> Webhook:
    """Subscribe `url` to `events`. Takes validated input (`WebhookCreateInputSerializer`); the URL's
    host is resolved now, and a target that may not be posted to is a 400."""
    try:
        resolve_target(parse_target(url))
    except TargetRefused as exc:
        raise InvalidInput(f"Webhook URL refused: {exc}.", details={"field": "url"}, code="webhook_url_forbidden") \
            from None
    with transaction.atomic():
        # Locks the organisation row: concurrent creations cannot both pass the cap.
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        if Webhook.objects.filter(organization=organization).count() >= MAX_WEBHOOKS_PER_ORGANIZATION:
            raise InvalidInput(f"An organization may have at most {MAX_WEBHOOKS_PER_ORGANIZATION} webhooks.",
                               details={"limit": MAX_WEBHOOKS_PER_ORGANIZATION}, code="too_many_webhooks")
        webhook = Webhook.objects.create(organization=organization, url=url, events=sorted(set(events)), secret=secret)
    logger.info("webhook created", extra={"organization": organization.slug, "webhook_id": webhook.pk})
    return webhook


def webhook_get(*, organization: Organization, webhook_id: int) -> Webhook:
    webhook = Webhook.objects.filter(organization=organization, pk=webhook_id).first()
    if webhook is None:  # another organisation's id answers exactly like a missing one
        raise NotFound("No such webhook.", code="webhook_not_found")
    return webhook


def webhook_delete(*, webhook: Webhook) -> None:
    """Unsubscribe; its pending deliveries go with it."""
    webhook.delete()


def _envelope(*, organization: Organization, event: str, occurred_at: datetime, payload: dict[str, Any]) -> dict:
    return {"event": event, "event_id": str(uuid.uuid4()), "organization": organization.slug,
            "occurred_at": occurred_at.isoformat().replace("+00:00", "Z"), **payload}


def webhook_event_fire(*, organization: Organization, event: str, payload: dict[str, Any],
                       occurred_at: datetime | None = None) -> int:
    """Queue `event` for every webhook of `organization` that subscribed to it; returns how many.

    `payload` (JSON-serialisable) is merged into the envelope every event has: `event`,
    `event_id` (one per event, the same for every webhook: receivers may de-duplicate on it),
    `organization` (the slug) and `occurred_at` (UTC, ISO 8601). Nothing is sent here: the rows
    are committed with the caller's transaction and the delivery runner posts them.
    """
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    hooks = [hook for hook in Webhook.objects.filter(organization=organization) if event in hook.events]
    if not hooks:
        return 0
    body = json.dumps(_envelope(organization=organization, event=event, occurred_at=occurred_at or timezone.now(),
                                payload=payload), separators=(",", ":"), ensure_ascii=False)
    WebhookDelivery.objects.bulk_create([WebhookDelivery(webhook=hook, event=event, body=body) for hook in hooks])
    return len(hooks)


def person_payload(*, id: int, name: str, external_id: str | None) -> dict[str, Any]:
    return {"id": id, "name": name, "external_id": external_id}


def source_payload(*, channel: str, api_key_name: str | None) -> dict[str, Any]:
    return {"channel": channel, "api_key_name": api_key_name}


class EventThrottle:
    """A WebSocket fires one event per person (and one `face.unknown`) per interval: a face that
    stays in view at 15 frames a second is one event, not 15. One per connection."""

    def __init__(self, *, interval: float):
        self.interval = interval
        self.last: dict[Any, float] = {}

    def allow(self, key: Any) -> bool:
        now = time.monotonic()
        last = self.last.get(key)
        if last is not None and now - last < self.interval:
            return False
        self.last[key] = now
        if len(self.last) > 1000:  # a long-lived socket seeing many people: forget the stale ones
            self.last = {k: t for k, t in self.last.items() if now - t < self.interval}
        return True


def recognition_events_fire(*, organization: Organization, recognition: Any, channel: str,
                            api_key_name: str | None, throttle: EventThrottle | None = None) -> int:
    """`face.recognized` for each face matched, `face.unknown` for each face nobody was named for
    (unknown or ambiguous), from one recognition (`recognition.services.Recognition`)."""
    threshold = recognition.threshold
    decided_by: dict[str, Any] = {"threshold_source": threshold.source}
    if threshold.source == SOURCE_CALIBRATED:  # as on a recognise answer: only a calibrated threshold has them
        decided_by.update(false_match_rate=threshold.false_match_rate, gallery_size=threshold.gallery_size)
    source = source_payload(channel=channel, api_key_name=api_key_name)
    fired = 0
    for face in recognition.faces:
        matched = face.decision == "match" and face.match is not None
        key = ("person", face.match.person_id) if matched else ("unknown",)
        if throttle is not None and not throttle.allow(key):
            continue
        payload: dict[str, Any] = {
            "decision": face.decision, "threshold": round(face.threshold, 4), **decided_by,
            "similarity": round(face.match.similarity, 4) if face.match is not None else None,
            "person": person_payload(id=face.match.person_id, name=face.match.name,
                                     external_id=face.match.external_id) if matched else None,
            "box": face.box, "unknown_face": face.unknown_face, "source": source,
        }
        fired += webhook_event_fire(organization=organization,
                                    event=EVENT_FACE_RECOGNIZED if matched else EVENT_FACE_UNKNOWN, payload=payload)
    return fired
