"""Expired unknown faces are purged without anyone asking: by each organisation's retention, on a
schedule kept in the database (a restart neither skips nor repeats a run), by the server process
itself and by `manage.py purge_unknown_faces`."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from faces.engine.config import deepface_home
from faces.index.base import vector_to_bytes
from faces.models import SweepState, UnknownFace
from faces.unknowns.sweep import PURGE, purge_if_due
from tests.conftest import database_url
from tests.ship.live_server import daphne

pytestmark = pytest.mark.django_db(transaction=True)

rng = np.random.default_rng(5)


def keep(org, *, days_ago: float, count: int = 1) -> list[int]:
    ids = []
    for _ in range(count):
        vector = rng.normal(size=128).astype(np.float32)
        unknown = UnknownFace.objects.create(
            organization=org, model_name="Dlib", embedding=vector_to_bytes(vector / np.linalg.norm(vector)),
            crop=b"\xff\xd8 not a real jpeg", box={"x": 0, "y": 0, "w": 50, "h": 50}, source="rest",
            seen_at=timezone.now() - timedelta(days=days_ago))
        ids.append(unknown.pk)
    return ids


@pytest.mark.parametrize("retention", [1, 7, 30])
def test_each_organisation_keeps_its_own_retention(make_org, retention):
    short, default = make_org("acme"), make_org("globex")
    short.unknown_retention_days = retention
    short.save()
    fresh = keep(short, days_ago=retention - 0.5)
    keep(short, days_ago=retention + 0.5, count=2)
    kept_default = keep(default, days_ago=retention + 0.5) if retention < 30 else []
    expired_default = keep(default, days_ago=31)
    assert purge_if_due(interval=3600) == 2 + len(expired_default)
    assert sorted(UnknownFace.objects.values_list("id", flat=True)) == sorted(fresh + kept_default)


def test_the_schedule_is_in_the_database(make_org):
    org = make_org("acme")
    assert purge_if_due(interval=3600) == 0  # first run ever: due
    keep(org, days_ago=40)
    assert purge_if_due(interval=3600) is None  # ran a moment ago, in any process
    assert UnknownFace.objects.count() == 1
    # As after a restart an hour later: only the stored time says it is due again.
    SweepState.objects.filter(name=PURGE).update(last_run_at=timezone.now() - timedelta(hours=2))
    assert purge_if_due(interval=3600) == 1
    assert not UnknownFace.objects.exists()


def test_the_command_purges_and_records_the_run(make_org):
    org = make_org("acme")
    keep(org, days_ago=31, count=2)
    fresh = keep(org, days_ago=1)
    out = StringIO()
    call_command("purge_unknown_faces", stdout=out)
    assert "2 expired unknown faces purged" in out.getvalue()
    assert list(UnknownFace.objects.values_list("id", flat=True)) == fresh
    assert SweepState.objects.get(name=PURGE).last_run_at is not None


def test_the_server_purges_on_its_own(make_org, tmp_path):
    org = make_org("acme")
    expired = keep(org, days_ago=31, count=3)
    fresh = keep(org, days_ago=1)
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict),
           "FACEPORTAL_VAR_DIR": str(tmp_path / "var"), "DEEPFACE_HOME": str(deepface_home()),
           "FACEPORTAL_WARM_ENGINE": "0", "FACEPORTAL_ENGINE_WORKERS": "1", "ALLOWED_HOSTS": "localhost,127.0.0.1",
           "FACEPORTAL_UNKNOWN_SWEEP_SECONDS": "1"}
    with daphne(env=env, log_path=tmp_path / "daphne.log"):
        deadline = time.monotonic() + 60
        while UnknownFace.objects.filter(id__in=expired).exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    assert not UnknownFace.objects.filter(id__in=expired).exists(), (tmp_path / "daphne.log").read_text()[-2000:]
    assert list(UnknownFace.objects.values_list("id", flat=True)) == fresh


def test_deleting_an_organisation_deletes_its_unknowns(make_org):
    from organizations.services import organization_delete

    gone, stays = make_org("acme"), make_org("globex")
    keep(gone, days_ago=1, count=2)
    kept = keep(stays, days_ago=1)
    organization_delete(organization=gone)
    assert list(UnknownFace.objects.values_list("id", flat=True)) == kept
