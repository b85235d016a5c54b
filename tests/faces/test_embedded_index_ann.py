"""The embedded index's HNSW path (forced on with a small threshold) on vectors of real faces."""

import numpy as np
import pytest

from faces.engine import get_engine
from faces.images import decode
from faces.index import VectorRecord
from faces.index.embedded import EmbeddedVectorIndex

pytestmark = pytest.mark.django_db

COPIES = 40  # perturbed copies per real face: a gallery of ~1400 vectors that look like faces
NOISE = 0.03


@pytest.fixture(scope="module")
def real_vectors(manifest) -> np.ndarray:
    engine = get_engine()
    photos = [photos[i] for name, photos in manifest.items() if not name.startswith("_") for i in range(2)
              if i < len(photos)][:36]
    vectors = []
    for photo in photos:
        result = engine.faces_in(decode(photo.path.read_bytes(), index=0).pixels, most_prominent_only=True)
        if result.faces:
            vectors.append(result.faces[0].embedding)
    return np.stack(vectors)


def gallery(real: np.ndarray, start_id: int) -> list[VectorRecord]:
    rng = np.random.default_rng(7)
    records = []
    face_id = start_id
    for copy in range(COPIES):
        noisy = real + (rng.normal(scale=NOISE, size=real.shape) if copy else 0)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        for vector in noisy.astype(np.float32):
            records.append(VectorRecord(face_id=face_id, person_id=face_id // 3, vector=vector))
            face_id += 1
    return records


def probes(real: np.ndarray) -> np.ndarray:
    """New photos of the same faces, as it were: fresh noise, not in the gallery."""
    noisy = real + np.random.default_rng(11).normal(scale=NOISE, size=real.shape)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def top1(index, org, queries):
    return [row[0].face_id for row in index.search(organization_id=org.pk, vectors=queries, k=3)]


def test_hnsw_answers_like_exact_search_and_survives_a_restart(make_org, real_vectors, tmp_path):
    org = make_org("acme")
    ann = EmbeddedVectorIndex(ann_min_faces=200, directory=tmp_path)
    exact = EmbeddedVectorIndex(ann_min_faces=10**9, directory=tmp_path / "exact")
    records = gallery(real_vectors, start_id=1)
    ann.ensure_organization(organization_id=org.pk, dimension=128)
    ann.add(organization_id=org.pk, records=records)

    queries = probes(real_vectors)
    ann._current(org.pk)
    ann.wait_for_background()  # the graph is built, and saved, off the request and search paths
    assert ann._current(org.pk).approximate and not exact._current(org.pk).approximate
    assert top1(ann, org, queries) == top1(exact, org, queries)
    approximate = ann.search(organization_id=org.pk, vectors=queries, k=1)
    exact_hits = exact.search(organization_id=org.pk, vectors=queries, k=1)
    assert [row[0].similarity for row in approximate] == pytest.approx([row[0].similarity for row in exact_hits])
    assert list((tmp_path).glob("org-*.usearch")), "the graph is saved next to the table"

    # Another worker (a fresh instance) loads the saved graph, then sees later writes of others.
    # (Its threshold is out of reach, so only the saved graph can make it approximate: no rebuild.)
    restarted = EmbeddedVectorIndex(ann_min_faces=10**9, directory=tmp_path)
    assert top1(restarted, org, queries) == top1(exact, org, queries)
    assert restarted._current(org.pk).approximate
    removed = top1(exact, org, queries[:3])
    ann.remove(organization_id=org.pk, face_ids=removed)
    newcomer = VectorRecord(face_id=10**6, person_id=10**6, vector=-real_vectors[0])
    ann.add(organization_id=org.pk, records=[newcomer])
    after = restarted.search(organization_id=org.pk, vectors=queries[:3], k=5)
    assert not {hit.face_id for row in after for hit in row} & set(removed)
    assert top1(restarted, org, queries) == top1(exact, org, queries)
    assert restarted.search(organization_id=org.pk, vectors=newcomer.vector, k=1)[0][0].face_id == 10**6


def test_hnsw_keeps_organisations_apart(make_org, real_vectors, tmp_path):
    acme, globex = make_org("acme"), make_org("globex")
    index = EmbeddedVectorIndex(ann_min_faces=200, directory=tmp_path)
    acme_records = gallery(real_vectors, start_id=1)
    index.add(organization_id=acme.pk, records=acme_records)
    index.add(organization_id=globex.pk, records=gallery(real_vectors, start_id=100_000))
    hits = index.search(organization_id=acme.pk, vectors=real_vectors, k=10)
    acme_ids = {r.face_id for r in acme_records}
    assert all(hit.face_id in acme_ids for row in hits for hit in row)
    index.drop_organization(organization_id=globex.pk)
    assert index.search(organization_id=globex.pk, vectors=real_vectors[:1], k=1) == [[]]
    assert len(index.search(organization_id=acme.pk, vectors=real_vectors[:1], k=1)[0]) == 1


def unit_rows(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_a_saved_graph_left_behind_never_brings_a_removed_face_back(make_org, tmp_path):
    org = make_org("acme")
    rng = np.random.default_rng(3)
    base = unit_rows(rng.normal(size=(1100, 128)))
    writer = EmbeddedVectorIndex(ann_min_faces=200, directory=tmp_path)
    writer.add(organization_id=org.pk, records=[VectorRecord(i + 1, i + 1, v) for i, v in enumerate(base)])
    writer.search(organization_id=org.pk, vectors=base[:1], k=1)
    writer.wait_for_background()
    assert list(tmp_path.glob("org-*.usearch"))
    # Another worker (its files elsewhere) removes face 1 and writes more than a restart catches up
    # on, so the graph saved above is left far behind the database.
    other = EmbeddedVectorIndex(ann_min_faces=200, directory=tmp_path / "other")
    other.remove(organization_id=org.pk, face_ids=[1])
    more = unit_rows(rng.normal(size=(2400, 128)))
    other.add(organization_id=org.pk, records=[VectorRecord(5000 + i, 5000 + i, v) for i, v in enumerate(more)])
    restarted = EmbeddedVectorIndex(ann_min_faces=10**9, directory=tmp_path)
    hits = restarted.search(organization_id=org.pk, vectors=base[:1], k=3)[0]
    assert 1 not in {hit.face_id for hit in hits}
    best = restarted.search(organization_id=org.pk, vectors=more[5], k=1)[0][0]
    assert best.face_id == 5005 and best.similarity == pytest.approx(1.0, abs=1e-6)
