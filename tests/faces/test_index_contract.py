"""The vector-store contract: what every backend must do, run against each backend.

Always against the embedded index. Against MongoDB Atlas (both layouts) only when MONGODB_URI is
set: with the local Atlas container up (`docker compose up -d --wait mongodb`), run

    make test-atlas          # MONGODB_URI=mongodb://127.0.0.1:27017/?directConnection=true

Without MONGODB_URI the Atlas cases are not collected at all (nothing silently passes); the
wire-level tests (test_atlas_wire.py) cover the Atlas code path against a fake Atlas on the wire.
Atlas indexes new vectors asynchronously, so searches after a write poll until they reflect it.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from faces.engine import get_engine
from faces.index import VectorIndex, VectorRecord, get_index, reset_index
from faces.matching import uncalibrated_threshold
from faces.models import Face, Person
from faces.services import person_register
from organizations.models import Organization

pytestmark = pytest.mark.django_db

DIMENSION = 128
ATLAS_CONTRACT_DATABASE = "faceportal_contract_test"  # dropped after each test
SETTLE_S = 60.0


def backends() -> list[str]:
    kinds = ["embedded"]
    if os.environ.get("MONGODB_URI"):
        kinds += ["atlas-per_org", "atlas-shared"]
    return kinds


@pytest.fixture(params=backends())
def index(request, settings) -> VectorIndex:
    kind = request.param
    if kind == "embedded":
        settings.FACEPORTAL_VECTOR_STORE = "embedded"
    else:
        settings.FACEPORTAL_VECTOR_STORE = "atlas"
        settings.MONGODB_URI = os.environ["MONGODB_URI"]
        settings.MONGODB_LAYOUT = kind.removeprefix("atlas-")
        settings.MONGODB_DATABASE = ATLAS_CONTRACT_DATABASE
    reset_index()
    built = get_index()
    yield built
    if kind != "embedded":
        built.client.drop_database(ATLAS_CONTRACT_DATABASE)
        built.close()
    reset_index()


@pytest.fixture
def make_tenant(index) -> Callable[[str], Organization]:
    def factory(slug: str) -> Organization:
        organization = Organization.objects.create(slug=slug, name=slug)
        index.ensure_organization(organization_id=organization.pk, dimension=DIMENSION)
        wait = getattr(index, "wait_until_queryable", None)
        if wait is not None:  # exercise Atlas' real $vectorSearch, not the pre-index scan
            assert wait(organization_id=organization.pk, timeout_s=300), "Atlas search index never became queryable"
        return organization

    return factory


def basis(n: int, seed: int = 0) -> np.ndarray:
    """n orthonormal vectors: cosines between them are exactly 0."""
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(DIMENSION, n)))
    return q.T.astype(np.float32)


def normalised(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def settled(read: Callable[[], Any], accept: Callable[[Any], bool]) -> Any:
    """The first read that `accept`s, or the last one after SETTLE_S (Atlas indexes asynchronously)."""
    deadline = time.monotonic() + SETTLE_S
    value = read()
    while not accept(value) and time.monotonic() < deadline:
        time.sleep(0.5)
        value = read()
    return value


def search_ids(index: VectorIndex, org: Organization, query: np.ndarray, k: int = 10) -> Callable[[], set[int]]:
    return lambda: {hit.face_id for hit in index.search(organization_id=org.pk, vectors=query, k=k)[0]}


@pytest.fixture
def gallery(index, make_tenant):
    """Faces 1..5 of acme on orthonormal vectors; faces 1 and 2 belong to person 10, the rest to 20."""
    org = make_tenant("acme")
    vectors = basis(5)
    records = [VectorRecord(face_id=i + 1, person_id=10 if i < 2 else 20, vector=vectors[i]) for i in range(5)]
    index.add(organization_id=org.pk, records=records)
    settled(search_ids(index, org, vectors[0]), lambda ids: len(ids) == 5)
    return org, vectors


def test_search_returns_top_k_best_first_with_cosine_similarity(index, gallery):
    org, vectors = gallery
    query = normalised(0.8 * vectors[0] + 0.6 * vectors[1])  # cos 0.8 with face 1, 0.6 with face 2, 0 else
    [hits] = index.search(organization_id=org.pk, vectors=query, k=3)
    assert [(hit.face_id, hit.person_id) for hit in hits[:2]] == [(1, 10), (2, 10)]
    assert [hit.similarity for hit in hits] == pytest.approx([0.9, 0.8, 0.5], abs=1e-3)
    assert len(hits) == 3


def test_threshold_keeps_only_close_enough_faces(index, gallery):
    org, vectors = gallery
    query = normalised(0.8 * vectors[0] + 0.6 * vectors[1])
    [hits] = index.search(organization_id=org.pk, vectors=query, k=5, min_similarity=0.85)
    assert [hit.face_id for hit in hits] == [1]
    [nothing] = index.search(organization_id=org.pk, vectors=query, k=5, min_similarity=0.95)
    assert nothing == []


def test_several_query_faces_get_one_answer_each(index, gallery):
    org, vectors = gallery
    results = index.search(organization_id=org.pk, vectors=np.stack([vectors[3], vectors[4]]), k=1)
    assert [[hit.face_id for hit in hits] for hits in results] == [[4], [5]]
    assert results[0][0].similarity == pytest.approx(1.0, abs=1e-3)


def test_count_and_face_ids_reflect_adds_and_removes(index, gallery):
    org, vectors = gallery
    assert index.count(organization_id=org.pk) == 5
    assert index.face_ids(organization_id=org.pk) == {1, 2, 3, 4, 5}
    index.remove(organization_id=org.pk, face_ids=[1, 3])
    assert index.count(organization_id=org.pk) == 3
    assert index.face_ids(organization_id=org.pk) == {2, 4, 5}
    found = settled(search_ids(index, org, vectors[0]), lambda ids: 1 not in ids and 3 not in ids)
    assert found == {2, 4, 5}, "removed faces are never found again"


def test_empty_gallery_answers_no_hits(index, make_tenant):
    org = make_tenant("empty")
    assert index.count(organization_id=org.pk) == 0
    assert index.face_ids(organization_id=org.pk) == set()
    assert index.search(organization_id=org.pk, vectors=np.stack(basis(2)), k=5) == [[], []]


def test_organisations_never_see_each_others_faces(index, gallery, make_tenant):
    acme, vectors = gallery
    globex = make_tenant("globex")
    index.add(organization_id=globex.pk, records=[VectorRecord(face_id=101, person_id=900, vector=vectors[0])])
    assert settled(search_ids(index, globex, vectors[0]), lambda ids: ids == {101}) == {101}
    assert search_ids(index, acme, vectors[0])() == {1, 2, 3, 4, 5}
    assert index.face_ids(organization_id=globex.pk) == {101}

    index.remove(organization_id=globex.pk, face_ids=[1, 2])  # acme's ids, asked through globex
    assert index.face_ids(organization_id=acme.pk) == {1, 2, 3, 4, 5}

    index.drop_organization(organization_id=globex.pk)
    assert index.count(organization_id=globex.pk) == 0
    assert index.count(organization_id=acme.pk) == 5
    assert search_ids(index, acme, vectors[0])() == {1, 2, 3, 4, 5}


def test_rebuild_replaces_an_organisations_vectors(index, gallery):
    org, vectors = gallery
    fresh = basis(8, seed=1)
    written = index.rebuild(
        organization_id=org.pk,
        records=(VectorRecord(face_id=i, person_id=30, vector=fresh[i]) for i in (2, 6, 7)),
    )
    assert written == 3
    assert index.face_ids(organization_id=org.pk) == {2, 6, 7}
    found = settled(search_ids(index, org, fresh[6]), lambda ids: ids == {2, 6, 7})
    assert found == {2, 6, 7}
    [hits] = index.search(organization_id=org.pk, vectors=fresh[6], k=1)
    assert (hits[0].face_id, hits[0].person_id) == (6, 30)
    assert hits[0].similarity == pytest.approx(1.0, abs=1e-3)


def test_dropped_organisation_is_empty_and_can_start_again(index, gallery):
    org, vectors = gallery
    index.drop_organization(organization_id=org.pk)
    assert index.count(organization_id=org.pk) == 0
    assert index.search(organization_id=org.pk, vectors=vectors[0], k=5) == [[]]
    index.ensure_organization(organization_id=org.pk, dimension=DIMENSION)
    index.add(organization_id=org.pk, records=[VectorRecord(face_id=50, person_id=1, vector=vectors[2])])
    assert settled(search_ids(index, org, vectors[2]), lambda ids: ids == {50}) == {50}


# --- keeping the store in step with the database (manage.py vectors) -------------------------------
def add_face_row(org: Organization, person: Person, vector: np.ndarray) -> Face:
    return Face.objects.create(organization=org, person=person, model_name="test", embedding=vector.tobytes(),
                               box={"x": 0, "y": 0, "w": 10, "h": 10})


def run_vectors(*args: str) -> str:
    out = io.StringIO()
    call_command("vectors", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_vectors_check_reports_differences_and_repair_fixes_them(index, make_tenant):
    org = make_tenant("acme")
    person = Person.objects.create(organization=org, name="Ada")
    vectors = basis(3)
    faces = [add_face_row(org, person, vectors[i]) for i in range(2)]
    index.add(organization_id=org.pk, records=[
        VectorRecord(face_id=faces[0].pk, person_id=person.pk, vector=vectors[0]),
        VectorRecord(face_id=999_999, person_id=person.pk, vector=vectors[2]),  # no face row: an orphan
    ])
    with pytest.raises(CommandError):
        run_vectors("check", "--org", "acme")
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("vectors", "check", "--org", "acme", stdout=out)
    report = out.getvalue()
    assert "acme: 2 faces, 2 vectors" in report
    assert f"1 missing vectors ({faces[1].pk})" in report and "1 orphan vectors (999999)" in report

    assert "1 vectors added, 1 orphans removed" in run_vectors("repair", "--org", "acme")
    assert "in step" in run_vectors("check", "--org", "acme")
    assert index.face_ids(organization_id=org.pk) == {faces[0].pk, faces[1].pk}


def test_vectors_rebuild_restores_the_store_from_the_database(index, make_tenant):
    org = make_tenant("acme")
    person = Person.objects.create(organization=org, name="Ada")
    vectors = basis(3)
    faces = [add_face_row(org, person, vectors[i]) for i in range(3)]
    assert "acme: 3 vectors written" in run_vectors("rebuild", "--org", "acme")
    assert index.face_ids(organization_id=org.pk) == {face.pk for face in faces}
    [hits] = settled(lambda: index.search(organization_id=org.pk, vectors=vectors[1], k=1), lambda r: bool(r[0]))
    assert hits[0].face_id == faces[1].pk and hits[0].person_id == person.pk


def test_vectors_reembed_rewrites_embeddings_from_the_stored_crops(index, make_tenant, manifest):
    org = make_tenant("acme")
    photos = manifest["Barack_Obama"][:2]
    result = person_register(organization=org, name="Barack Obama", images=[p.b64() for p in photos])
    originals = {face.pk: face.vector.copy() for face in Face.objects.filter(person=result.person)}
    assert all(face.crop for face in Face.objects.filter(person=result.person)), "crops are kept"
    # As if an older model had written them: meaningless vectors under another model name.
    noise = basis(len(originals), seed=7)
    for face_id, vector in zip(originals, noise, strict=True):
        Face.objects.filter(pk=face_id).update(embedding=vector.tobytes(), model_name="OldModel")

    assert "2 faces re-embedded" in run_vectors("reembed", "--org", "acme")
    engine = get_engine()
    for face in Face.objects.filter(person=result.person):
        assert face.model_name == engine.model_name
        cosine = float(face.vector @ originals[face.pk])
        assert cosine > 0.9, "the crop gives back (nearly) the embedding of the original photo"
    probe = originals[next(iter(originals))]
    [hits] = settled(lambda: index.search(organization_id=org.pk, vectors=probe, k=2), lambda r: len(r[0]) == 2)
    assert {hit.face_id for hit in hits} == set(originals)
    assert hits[0].similarity > uncalibrated_threshold()
