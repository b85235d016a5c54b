"""The vector write path after commit: committed faces keep their vectors when an after-commit
step fails; graphs are built and saved in the background; graph files are
written under a cross-process lock. Real PostgreSQL, the real embedded store, real photos."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pytest
from django.db import transaction

from faces.index import VectorRecord, get_index
from faces.index.embedded import AnnFiles, EmbeddedVectorIndex, OrgVectors
from faces.models import EmbeddedVector, Face
from faces.services import mirrored_write, person_register
from faces.vector_maintenance import vectors_check

pytestmark = pytest.mark.django_db(transaction=True)


def unit_rows(count: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, 128))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_a_failing_after_commit_step_never_undoes_committed_vectors(make_org):
    organization = make_org("acme")
    index = get_index()
    records = [VectorRecord(face_id=n, person_id=n, vector=v) for n, v in enumerate(unit_rows(3, 1), start=1)]

    def failing_hook() -> None:
        raise RuntimeError("an after-commit step failed")

    undo = [lambda: index.remove(organization_id=organization.pk, face_ids=[r.face_id for r in records])]
    with mirrored_write(undo):
        index.add(organization_id=organization.pk, records=records)
        transaction.on_commit(failing_hook)
    # No exception reached the caller, and the committed vectors were not taken back.
    assert index.face_ids(organization_id=organization.pk) == {1, 2, 3}


def test_a_failure_before_the_commit_still_undoes(make_org):
    organization = make_org("acme")
    index = get_index()
    records = [VectorRecord(face_id=7, person_id=7, vector=unit_rows(1, 2)[0])]
    undone: list[bool] = []
    with pytest.raises(RuntimeError):
        with mirrored_write([lambda: undone.append(True)]):
            index.add(organization_id=organization.pk, records=records)
            raise RuntimeError("the write failed before its commit")
    assert undone == [True]
    assert index.face_ids(organization_id=organization.pk) == set()


def test_registration_stands_when_the_in_memory_update_fails(make_org, manifest, monkeypatch):
    organization = make_org("acme")
    photos = manifest["Barack_Obama"]
    first = person_register(organization=organization, name="Obama", images=[photos[0].b64()])
    index = get_index()
    probe = Face.objects.get(pk=first.outcomes[0].face_id).vector
    index.search(organization_id=organization.pk, vectors=probe, k=1)  # this worker holds a copy now

    # Fault injection: the copy's update, run by the store's on_commit hook, fails (as on MemoryError).
    def broken_upsert(self, *args, **kwargs):
        raise MemoryError("no room for the new vectors")

    with monkeypatch.context() as patch:
        patch.setattr(OrgVectors, "upsert", broken_upsert)
        second = person_register(organization=organization, name="Obama", images=[photos[1].b64()])
    face_ids = set(Face.objects.filter(organization=organization).values_list("id", flat=True))
    assert len(face_ids) == 2 and second.outcomes[0].face_id in face_ids
    diff = vectors_check(organization=organization)
    assert diff.consistent and diff.vectors == 2, diff
    # The store repaired itself: the failed copy was dropped, and the next search reloads it whole.
    new_face = Face.objects.get(pk=second.outcomes[0].face_id)
    hit = index.search(organization_id=organization.pk, vectors=new_face.vector, k=1)[0][0]
    assert hit.face_id == new_face.pk and hit.similarity == pytest.approx(1.0, abs=1e-5)


def test_a_committed_write_is_applied_to_this_workers_copy_by_the_commit_hook(make_org, tmp_path):
    """The path production runs on every write: the on_commit hook updates the copy in place.

    Checked on the held copy itself, without a search: a search would catch up from the table and
    hide a hook that does nothing."""
    organization = make_org("acme")
    index = EmbeddedVectorIndex(directory=tmp_path)
    rows = unit_rows(3, 5)
    index.add(organization_id=organization.pk, records=[VectorRecord(face_id=1, person_id=1, vector=rows[0])])
    index.search(organization_id=organization.pk, vectors=rows[0], k=1)  # this worker holds a copy now
    held = index._orgs[organization.pk]

    index.add(organization_id=organization.pk,
              records=[VectorRecord(face_id=n, person_id=n, vector=rows[n - 1]) for n in (2, 3)])
    assert index._orgs[organization.pk] is held
    assert held.version == index._db_version(organization.pk)
    assert held.face_ids.tolist() == [1, 2, 3]
    np.testing.assert_array_equal(held.vectors()[2], rows[2])

    index.remove(organization_id=organization.pk, face_ids=[2])
    assert index._orgs[organization.pk] is held
    assert held.version == index._db_version(organization.pk)
    assert held.face_ids.tolist() == [1, 3]


def test_the_graph_is_built_and_saved_in_the_background_while_searches_stay_exact(make_org, tmp_path):
    organization = make_org("acme")
    index = EmbeddedVectorIndex(ann_min_faces=200, directory=tmp_path)
    rows = unit_rows(1100, 3)  # past SAVE_MIN_CHANGES too, so the new graph is saved
    index.search(organization_id=organization.pk, vectors=rows[0], k=1)  # an (empty) copy in memory
    with index.builder.busy:  # the background thread is held back
        index.add(organization_id=organization.pk,
                  records=[VectorRecord(face_id=n + 1, person_id=n + 1, vector=v) for n, v in enumerate(rows)])
        # The commit hook applied the write but built no graph: the copy crossed the threshold and
        # searches go on, exact, without waiting for a build.
        copy = index._current(organization.pk)
        assert len(copy) == 1100 and copy.wants_graph and not copy.approximate
        hit = index.search(organization_id=organization.pk, vectors=rows[42], k=1)[0][0]
        assert hit.face_id == 43 and hit.similarity == pytest.approx(1.0, abs=1e-6)
        assert not list(tmp_path.glob("org-*.usearch"))
    index.wait_for_background()
    assert index._current(organization.pk) is copy and copy.approximate
    assert index.search(organization_id=organization.pk, vectors=rows[42], k=1)[0][0].face_id == 43
    assert list(tmp_path.glob("org-*.usearch")), "saved by the background thread"


def test_faces_written_while_the_graph_builds_are_in_it(make_org, tmp_path):
    organization = make_org("acme")
    index = EmbeddedVectorIndex(ann_min_faces=200, directory=tmp_path)
    rows = unit_rows(400, 4)
    index.search(organization_id=organization.pk, vectors=rows[0], k=1)
    records = [VectorRecord(face_id=n + 1, person_id=n + 1, vector=v) for n, v in enumerate(rows)]
    with index.builder.busy:
        index.add(organization_id=organization.pk, records=records[:300])
        index.remove(organization_id=organization.pk, face_ids=[5])
        index.add(organization_id=organization.pk, records=records[300:])
    index.wait_for_background()
    copy = index._current(organization.pk)
    assert copy.approximate and len(copy) == 399 and len(copy.ann) == 399
    assert index.search(organization_id=organization.pk, vectors=rows[350], k=1)[0][0].face_id == 351
    assert 5 not in {hit.face_id for hit in index.search(organization_id=organization.pk, vectors=rows[4], k=5)[0]}
    assert EmbeddedVector.objects.filter(organization_id=organization.pk).count() == 399


def _save_repeatedly(directory: str, first_version: int, step: int, rounds: int) -> None:
    files = AnnFiles(__import__("pathlib").Path(directory))
    rows = unit_rows(300, first_version)
    ids = np.arange(1, 301, dtype=np.int64)
    vectors = OrgVectors(dimension=128, ann_min_faces=10, face_ids=ids, person_ids=ids, matrix=rows)
    vectors.to_ann()
    for round_ in range(rounds):
        vectors.version = first_version + step * round_
        files.save(1, "stamp", vectors)


def test_two_processes_saving_one_graph_never_delete_each_others_files(tmp_path):
    files = AnnFiles(tmp_path)
    context = multiprocessing.get_context("fork")
    rounds = 12
    writers = [context.Process(target=_save_repeatedly, args=(str(tmp_path), start, 2, rounds)) for start in (1, 2)]
    for writer in writers:
        writer.start()
    loads = failures = 0
    while any(writer.is_alive() for writer in writers):
        if (tmp_path / "org-1.json").exists():
            loaded = files.load(1, "stamp", db_version=10**6, ann_min_faces=10)
            loads += 1
            failures += loaded is None or len(loaded) != 300
    for writer in writers:
        writer.join(timeout=120)
        assert writer.exitcode == 0
    assert loads > 0 and failures == 0, (loads, failures)
    # What is left is whole, and the newest version: an older save never replaced a newer one.
    final = files.load(1, "stamp", db_version=10**6, ann_min_faces=10)
    assert final is not None and final.version == 2 + 2 * (rounds - 1)
    graph_files = sorted(path.name for path in tmp_path.glob("org-1-v*"))
    assert len(graph_files) == 3 and all(name.startswith(f"org-1-v{final.version}-") for name in graph_files)
