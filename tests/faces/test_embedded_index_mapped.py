"""A large organisation's index served from its saved files: the graph (memory-mapped) and float32
vectors (read by row) are shared by every worker through the page cache, while registrations and removals since
the save live in the worker's own memory. Real face vectors, real Postgres, real files."""

import multiprocessing

import numpy as np
import pytest

from faces.engine import get_engine
from faces.images import decode
from faces.index import VectorRecord
from faces.index.embedded import SAVE_MIN_CHANGES, AnnFiles, EmbeddedVectorIndex

pytestmark = pytest.mark.django_db

NOISE = 0.03


@pytest.fixture(scope="module")
def real_vectors(manifest) -> np.ndarray:
    engine = get_engine()
    photos = [photos[i] for name, photos in manifest.items() if not name.startswith("_") for i in range(2)
              if i < len(photos)][:30]
    vectors = []
    for photo in photos:
        result = engine.faces_in(decode(photo.path.read_bytes(), index=0).pixels, most_prominent_only=True)
        if result.faces:
            vectors.append(result.faces[0].embedding)
    return np.stack(vectors).astype(np.float32)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def gallery(real: np.ndarray, *, copies: int, start_id: int, seed: int) -> list[VectorRecord]:
    """`copies` noisy "photos" of every real face; three consecutive faces share a person."""
    rng = np.random.default_rng(seed)
    records, face_id = [], start_id
    for _ in range(copies):
        for vector in unit(real + rng.normal(scale=NOISE, size=real.shape)):
            records.append(VectorRecord(face_id=face_id, person_id=face_id // 3, vector=vector))
            face_id += 1
    return records


def probes(real: np.ndarray) -> np.ndarray:
    return unit(real + np.random.default_rng(11).normal(scale=NOISE, size=real.shape))


RECALL_AT_1 = 0.95


def agreement(found: list[int], truth: list[int]) -> float:
    return sum(a == b for a, b in zip(found, truth, strict=True)) / len(truth)


def top1(index, org, queries) -> list[int]:
    return [row[0].face_id for row in index.search(organization_id=org.pk, vectors=queries, k=3)]


def mapped_index(org, real, directory) -> tuple[EmbeddedVectorIndex, list[VectorRecord]]:
    """An index whose graph was built, saved and is now served from its files (low ann_min_faces)."""
    index = EmbeddedVectorIndex(ann_min_faces=200, directory=directory)
    records = gallery(real, copies=40, start_id=1, seed=7)  # past SAVE_MIN_CHANGES: the graph is saved
    index.add(organization_id=org.pk, records=records)
    index.search(organization_id=org.pk, vectors=real[:1], k=1)
    index.wait_for_background()
    return index, records


def test_a_saved_graph_is_served_from_mapped_files_with_exact_answers(make_org, real_vectors, tmp_path):
    org = make_org("acme")
    index, records = mapped_index(org, real_vectors, tmp_path)
    exact = EmbeddedVectorIndex(ann_min_faces=10**9, directory=tmp_path / "exact")
    copy = index._current(org.pk)
    assert copy.base is not None and len(copy.base.face_ids) == len(records)
    # Neither the graph nor the float32 vectors sit in the worker's heap any more.
    assert copy.used == 0
    assert copy.memory_bytes() < (copy.mapped_bytes() + copy.read_bytes()) / 3
    queries = probes(real_vectors)
    # The graph is mapped; the vectors are read by row, so their pages never join the worker's RSS.
    with open("/proc/self/maps") as maps:
        mapped_paths = {line.split()[-1] for line in maps if len(line.split()) == 6}
    assert str(copy.base.graph_path) in mapped_paths
    assert str(copy.base.matrix_path) not in mapped_paths
    mapped = [row[0] for row in index.search(organization_id=org.pk, vectors=queries, k=1)]
    exact_hits = [row[0] for row in exact.search(organization_id=org.pk, vectors=queries, k=1)]
    assert agreement([hit.face_id for hit in mapped], [hit.face_id for hit in exact_hits]) >= RECALL_AT_1
    for found, best in zip(mapped, exact_hits, strict=True):
        # The same face, with the similarity re-ranked from the float32 file; or, where the graph search
        # (approximate, its build not deterministic) took another of the 40 noisy copies of that photo,
        # a copy nearly as close as the best, never closer.
        if found.face_id == best.face_id:
            assert found.similarity == pytest.approx(best.similarity, abs=1e-6)
        else:
            assert (found.face_id - 1) % len(real_vectors) == (best.face_id - 1) % len(real_vectors)
            assert best.similarity - 0.01 <= found.similarity <= best.similarity + 1e-6


def test_faces_registered_and_removed_one_by_one_on_a_mapped_store(make_org, real_vectors, tmp_path):
    org = make_org("acme")
    index, records = mapped_index(org, real_vectors, tmp_path)
    exact = EmbeddedVectorIndex(ann_min_faces=10**9, directory=tmp_path / "exact")
    token = index._current(org.pk).base.token
    # New people registered one face at a time: found at once, with their exact similarity.
    newcomers = gallery(-real_vectors[:5], copies=1, start_id=10**6, seed=3)
    for record in newcomers:
        index.add(organization_id=org.pk, records=[record])
    for record in newcomers:
        hit = index.search(organization_id=org.pk, vectors=record.vector, k=1)[0][0]
        assert hit.face_id == record.face_id and hit.similarity == pytest.approx(1.0, abs=1e-6)
    # Removed faces never come back, though the saved graph still holds them until the next save.
    queries = probes(real_vectors)
    removed = top1(exact, org, queries[:6])
    index.remove(organization_id=org.pk, face_ids=removed)
    answered = index.search(organization_id=org.pk, vectors=queries[:6], k=5)
    assert not {hit.face_id for row in answered for hit in row} & set(removed)
    assert top1(index, org, queries) == top1(exact, org, queries)
    copy = index._current(org.pk)
    assert copy.base.token == token, "a few changes are served beside the mapped graph, not rebuilt"
    removed_rows = np.searchsorted(copy.base.face_ids, removed)
    assert not copy.base.matrix[removed_rows].any(), "no copy of a removed vector in this worker's pages"


def test_a_restarted_worker_maps_the_saved_store_and_catches_up(make_org, real_vectors, tmp_path):
    org = make_org("acme")
    index, records = mapped_index(org, real_vectors, tmp_path)
    exact = EmbeddedVectorIndex(ann_min_faces=10**9, directory=tmp_path / "exact")
    queries = probes(real_vectors)
    removed = top1(exact, org, queries[:3])
    index.remove(organization_id=org.pk, face_ids=removed)
    newcomer = VectorRecord(face_id=10**6, person_id=10**6, vector=-real_vectors[0])
    index.add(organization_id=org.pk, records=[newcomer])
    # A restart (its threshold out of reach, so only the saved files can make it approximate).
    restarted = EmbeddedVectorIndex(ann_min_faces=10**9, directory=tmp_path)
    copy = restarted._current(org.pk)
    assert copy.base is not None and copy.base.token == index._current(org.pk).base.token
    assert restarted.search(organization_id=org.pk, vectors=newcomer.vector, k=1)[0][0].face_id == 10**6
    answered = restarted.search(organization_id=org.pk, vectors=queries[:3], k=5)
    assert not {hit.face_id for row in answered for hit in row} & set(removed)
    assert top1(restarted, org, queries) == top1(exact, org, queries) == top1(index, org, queries)


def test_two_workers_agree_and_share_one_saved_store_after_many_changes(make_org, real_vectors, tmp_path):
    org = make_org("acme")
    first, _ = mapped_index(org, real_vectors, tmp_path)
    second = EmbeddedVectorIndex(ann_min_faces=200, directory=tmp_path)
    queries = probes(real_vectors)
    assert top1(second, org, queries) == top1(first, org, queries)
    # More changes than a save waits for, written through the first worker: it folds them into new
    # files; the second one, catching up, maps those files instead of saving a copy of its own.
    more = gallery(real_vectors, copies=SAVE_MIN_CHANGES // len(real_vectors) + 2, start_id=50_000, seed=9)
    first.add(organization_id=org.pk, records=more)
    first.remove(organization_id=org.pk, face_ids=[2, 3, 4])
    first.search(organization_id=org.pk, vectors=queries[:1], k=1)
    first.wait_for_background()
    mine = first._current(org.pk)
    assert len(mine.loose) == 0 and mine.graph_dead == 0 and len(mine.base.face_ids) == len(mine)
    exact = EmbeddedVectorIndex(ann_min_faces=10**9, directory=tmp_path / "exact")
    truth = top1(exact, org, queries)
    # Each copy of a face has near twins, so an approximate graph may return a twin now and then.
    assert agreement(top1(first, org, queries), truth) >= RECALL_AT_1
    assert agreement(top1(second, org, queries), truth) >= RECALL_AT_1
    second.wait_for_background()
    assert second._current(org.pk).base.token == mine.base.token
    assert top1(second, org, queries) == top1(first, org, queries)  # the same files: the same answers
    assert len(list(tmp_path.glob("org-*.npy"))) == 1, "one saved copy on disk, mapped by both"


def _search_in_a_child(directory: str, queries: np.ndarray, answers) -> None:
    vectors = AnnFiles(__import__("pathlib").Path(directory)).load(1, "stamp", db_version=10**6, ann_min_faces=10)
    answers.put([row[0].face_id for row in vectors.search(queries, 3)])


def test_another_process_mapping_the_same_files_gives_the_same_answers(real_vectors, tmp_path):
    from faces.index.embedded import OrgVectors

    records = gallery(real_vectors, copies=20, start_id=1, seed=5)
    ids = np.array([r.face_id for r in records], dtype=np.int64)
    built = OrgVectors(dimension=128, ann_min_faces=100, face_ids=ids, person_ids=ids // 3,
                       matrix=np.stack([r.vector for r in records]))
    built.to_ann()
    built.version = 1
    files = AnnFiles(tmp_path)
    assert files.save(1, "stamp", built)
    queries = probes(real_vectors)
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=_search_in_a_child, args=(str(tmp_path), queries, answers))
    child.start()
    theirs = answers.get(timeout=120)
    child.join(timeout=60)
    mine = files.load(1, "stamp", db_version=10**6, ann_min_faces=10)
    assert child.exitcode == 0
    assert theirs == [row[0].face_id for row in mine.search(queries, 3)]
    assert theirs == [row[0].face_id for row in built.search(queries, 3)]
