"""Sending queued deliveries, outside every request and frame.

The server process runs `start_webhook_runner` (faceportal.asgi): a daemon thread that every
FACEPORTAL_WEBHOOK_POLL_SECONDS claims the due deliveries and posts them. Everything it knows is
in the table: a delivery is claimed by moving its `next_attempt_at` past the attempt's timeout
(with SKIP LOCKED, so several processes never send the same one at once), so a process that dies
mid-send leaves a row that another run picks up once that lease passes, and a restart resumes
every pending row. `manage.py deliver_webhooks` runs one pass by hand or from cron.

Each POST is signed (docs/WEBHOOKS.md): `X-FacePortal-Signature: sha256=<hex>`, the HMAC-SHA256
with the webhook's secret of `<X-FacePortal-Timestamp>.<body>`. A 2xx answer delivers it; any
other answer (a redirect included: none is followed), a timeout or a refused connection is
retried after FACEPORTAL_WEBHOOK_BACKOFF_SECONDS, doubling each time, until
FACEPORTAL_WEBHOOK_MAX_ATTEMPTS, then the delivery is failed. A target that resolves to a
private address (and FACEPORTAL_WEBHOOK_ALLOW_PRIVATE off) is failed at once, nothing sent.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from faceportal.background import one_pass, start_once
from recognition.models import WebhookDelivery
from recognition.webhooks.targets import TargetRefused, parse_target, post_pinned, resolve_target

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-FacePortal-Signature"
TIMESTAMP_HEADER = "X-FacePortal-Timestamp"
BATCH = 20
KEEP_FINISHED = timedelta(days=7)  # delivered and failed rows are kept this long, for the deliveries route
PRUNE_EVERY = 3600.0  # seconds between prunes in the delivery thread

_started = threading.Event()


def signature_for(*, secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 of `<timestamp>.<body>` with the webhook's secret."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def retry_delay(*, attempts: int) -> float:
    """Seconds before the next try, after `attempts` failed ones: the backoff, doubled each time."""
    return settings.FACEPORTAL_WEBHOOK_BACKOFF_SECONDS * (2 ** max(0, attempts - 1))


def _claim(*, now: datetime, limit: int) -> list[WebhookDelivery]:
    lease = now + timedelta(seconds=settings.FACEPORTAL_WEBHOOK_TIMEOUT * 2 + 5)
    with transaction.atomic():
        due = list(WebhookDelivery.objects.select_for_update(skip_locked=True)
                   .filter(status=WebhookDelivery.PENDING, next_attempt_at__lte=now)
                   .order_by("next_attempt_at", "id")[:limit])
        ids = [delivery.pk for delivery in due]
        WebhookDelivery.objects.filter(pk__in=ids).update(next_attempt_at=lease)
    return list(WebhookDelivery.objects.filter(pk__in=ids).select_related("webhook").order_by("id"))


def delivery_attempt(*, delivery: WebhookDelivery) -> WebhookDelivery:
    """Post one delivery once and record the outcome (delivered, retry later, or failed)."""
    body = delivery.body.encode()
    status_code: int | None = None
    error = ""
    final = False
    try:
        target = parse_target(delivery.webhook.url)
        address = resolve_target(target)
        timestamp = int(timezone.now().timestamp())
        headers = {
            "Content-Type": "application/json", "User-Agent": "FacePortal-Webhooks/1.0",
            TIMESTAMP_HEADER: str(timestamp), "X-FacePortal-Event": delivery.event,
            "X-FacePortal-Delivery": str(delivery.pk),
            SIGNATURE_HEADER: signature_for(secret=delivery.webhook.secret, timestamp=timestamp, body=body),
        }
        status_code = post_pinned(target, address, body=body, headers=headers,
                                  timeout=settings.FACEPORTAL_WEBHOOK_TIMEOUT)
    except TargetRefused as exc:
        error, final = str(exc), True  # refused by the rules, not by the network: a retry changes nothing
    except Exception as exc:  # timeouts, refused connections, TLS errors: the target's trouble, retried
        error = type(exc).__name__
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = error[:300] if status_code is None else ("" if 200 <= status_code < 300 else
                                                                    f"answered HTTP {status_code}")
    if status_code is not None and 200 <= status_code < 300:
        delivery.status, delivery.finished_at = WebhookDelivery.DELIVERED, now
    elif final or delivery.attempts >= settings.FACEPORTAL_WEBHOOK_MAX_ATTEMPTS:
        delivery.status, delivery.finished_at = WebhookDelivery.FAILED, now
    else:
        delivery.next_attempt_at = now + timedelta(seconds=retry_delay(attempts=delivery.attempts))
    delivery.save(update_fields=["attempts", "last_status_code", "last_error", "status", "finished_at",
                                 "next_attempt_at"])
    # Never the secret nor the body: the event, the outcome and where it went.
    logger.info("webhook delivery", extra={"delivery_id": delivery.pk, "webhook_id": delivery.webhook_id,
                                           "event": delivery.event, "status": delivery.status,
                                           "status_code": status_code, "attempts": delivery.attempts})
    return delivery


def deliver_due(*, now: datetime | None = None, limit: int = BATCH) -> int:
    """One pass: claim the due deliveries and post each once; how many were attempted."""
    claimed = _claim(now=now or timezone.now(), limit=limit)
    for delivery in claimed:
        delivery_attempt(delivery=delivery)
    return len(claimed)


def deliveries_prune(*, now: datetime | None = None) -> int:
    """Forget finished deliveries older than KEEP_FINISHED; pending ones are never pruned."""
    cutoff = (now or timezone.now()) - KEEP_FINISHED
    deleted, _ = WebhookDelivery.objects.filter(finished_at__lt=cutoff).exclude(status=WebhookDelivery.PENDING).delete()
    return deleted


def _loop(poll: float, stop: threading.Event) -> None:
    pruned_at = 0.0
    while not stop.is_set():
        if time.monotonic() - pruned_at >= PRUNE_EVERY:
            one_pass(deliveries_prune, logger=logger, failure="pruning webhook deliveries failed; retrying later")
            pruned_at = time.monotonic()
        attempted = one_pass(deliver_due, logger=logger, failure="webhook deliveries failed; retrying later") or 0
        if attempted < BATCH:  # a full batch means more are due now
            stop.wait(poll)


def start_webhook_runner(*, poll: float | None = None, stop: threading.Event | None = None) -> threading.Thread | None:
    """Start the delivery thread once per process (none when the poll interval is 0)."""
    poll = settings.FACEPORTAL_WEBHOOK_POLL_SECONDS if poll is None else poll
    return start_once(name="webhook-delivery", loop=_loop, period=poll, started=_started, stop=stop)
