"""What happens to a person, for the rooms that build on faces (recognition's webhooks): faces
never imports them.

Both signals carry `organization` and `person` (`PersonSnapshot`: id, name, external_id, as they
were) and are sent from `transaction.on_commit`, so a rolled-back registration or deletion sends
nothing:
- `person_created`: a registration created the person (not when it added faces to one).
- `person_deleted`: the person is gone: deleted with their faces, or merged into another person.

`enrolment_job_finished` carries `organization` and `job` (faces.models.EnrolmentJob), sent once a
bulk enrolment job's last image has committed.
"""

from dataclasses import dataclass

from django.dispatch import Signal

person_created = Signal()
person_deleted = Signal()
enrolment_job_finished = Signal()


@dataclass(frozen=True)
class PersonSnapshot:
    id: int
    name: str
    external_id: str | None
