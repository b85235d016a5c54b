"""recognition listens to faces' person lifecycle to fire webhooks: faces never imports it."""

from __future__ import annotations

import logging

from django.dispatch import receiver

from faces.signals import enrolment_job_finished, person_created, person_deleted
from recognition.models import EVENT_ENROLMENT_JOB_FINISHED, EVENT_PERSON_CREATED, EVENT_PERSON_DELETED
from recognition.webhooks.services import person_payload, webhook_event_fire

logger = logging.getLogger(__name__)


def _fire(event: str, organization, person) -> None:
    try:
        webhook_event_fire(organization=organization, event=event,
                           payload={"person": person_payload(id=person.id, name=person.name,
                                                             external_id=person.external_id)})
    except Exception:  # sent after the commit: the person's change stands whatever happens here
        logger.exception("webhook event not queued", extra={"organization": organization.slug, "event": event})


@receiver(person_created)
def fire_person_created(sender, organization, person, **kwargs) -> None:
    _fire(EVENT_PERSON_CREATED, organization, person)


@receiver(person_deleted)
def fire_person_deleted(sender, organization, person, **kwargs) -> None:
    _fire(EVENT_PERSON_DELETED, organization, person)


@receiver(enrolment_job_finished)
def fire_enrolment_job_finished(sender, organization, job, **kwargs) -> None:
    payload = {"job": {"id": job.pk, "status": job.status, "done": job.done, "total": job.total,
                       "faces_added": job.faces_added}}
    try:
        webhook_event_fire(organization=organization, event=EVENT_ENROLMENT_JOB_FINISHED, payload=payload)
    except Exception:  # sent after the commit: the job's outcome stands whatever happens here
        logger.exception("webhook event not queued",
                         extra={"organization": organization.slug, "event": EVENT_ENROLMENT_JOB_FINISHED})
