"""Wire-level tests of the Atlas backend: the real `AtlasVectorIndex` through real pymongo against a
fake Atlas on the wire (`mockupdb`, MongoDB's scripted wire-protocol server for driver tests).

No MongoDB runs here. `FakeAtlasWire` answers each command from a little canned state and records
what it was sent, so these tests state the exact commands FacePortal sends to Atlas: the search
index definition, the `$vectorSearch` pipeline, the writes and deletes, the index polling, and the
503 answers when the server does not answer. The contract suite (test_index_contract.py) runs the
same backend against a real Atlas when MONGODB_URI is set.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from mockupdb import MockupDB
from pymongo import MongoClient

from faces.engine import get_engine
from faces.index import VectorRecord, VectorStoreUnavailable, get_index, reset_index
from faces.index.atlas import INDEX_NAME, AtlasVectorIndex, redact_uri
from faces.models import Face, Person
from organizations.services import organization_create, organization_delete
from tests.conftest import key_client

pytestmark = [pytest.mark.wire, pytest.mark.django_db]

DATABASE = "faceportal_atlas"
DIMENSION = 128
# What a MongoDB 7.0 server says in its handshake; mockupdb's default (wire version 6) is older
# than pymongo 4.x accepts and than the search-index commands need.
HELLO = {
    "ismaster": True,
    "isWritablePrimary": True,
    "helloOk": True,
    "minWireVersion": 0,
    "maxWireVersion": 21,
    "maxBsonObjectSize": 16 * 1024 * 1024,
    "maxMessageSizeBytes": 48_000_000,
    "maxWriteBatchSize": 100_000,
}


class FakeAtlasWire:
    """A fake Atlas: a scripted wire-protocol server that records commands and answers from canned state."""

    def __init__(self) -> None:
        self.server = MockupDB()
        self.server.autoresponds(self._answer)
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self.search_indexes: list[dict[str, Any]] = []  # what $listSearchIndexes returns
        self.new_index_queryable = True  # state of an index right after createSearchIndexes
        self.count = 0  # documents count_documents reports
        self.documents: list[dict[str, Any]] = []  # what find returns
        self.hits: list[dict[str, Any]] = []  # what $vectorSearch returns
        self.collections: list[str] = []  # what listCollections returns
        self.silent = False  # accept connections and handshakes, never answer a command
        self._lock = threading.Lock()

    @property
    def uri(self) -> str:
        return f"mongodb://{self.server.address_string}/?directConnection=true"

    def start(self) -> FakeAtlasWire:
        self.server.run()
        # Stopping mockupdb before its accept thread is up makes that thread fail on the closed
        # socket; one answered ping proves it is up.
        with MongoClient(self.uri, serverSelectionTimeoutMS=10_000) as probe:
            probe.admin.command("ping")
        self.clear()
        return self

    def stop(self) -> None:
        self.server.stop()

    def queryable_index(self, dimension: int = DIMENSION, queryable: bool = True) -> None:
        self.search_indexes = [_index_description(dimension, queryable)]

    def sent(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [doc for command, doc in self.commands if command == name]

    def sent_names(self) -> list[str]:
        with self._lock:
            return [command for command, _ in self.commands]

    def pipelines(self, first_stage: str) -> list[list[dict[str, Any]]]:
        return [doc["pipeline"] for doc in self.sent("aggregate") if first_stage in doc["pipeline"][0]]

    def clear(self) -> None:
        with self._lock:
            self.commands.clear()

    def _answer(self, request) -> bool | None:
        name = request.command_name
        if name.lower() in {"ismaster", "hello"}:
            return request.ok(**HELLO)
        if self.silent:
            return None  # left unanswered: the client times out
        doc = _plain(request.doc)
        with self._lock:
            self.commands.append((name, doc))
        collection = doc.get(name)
        if name == "aggregate":
            return request.ok(cursor=self._cursor(collection, self._aggregate(doc["pipeline"])))
        if name == "find":
            return request.ok(cursor=self._cursor(collection, self.documents))
        if name == "listCollections":
            return request.ok(cursor=self._cursor("$cmd.listCollections", [
                {"name": name, "type": "collection"} for name in self.collections
            ]))
        if name == "createSearchIndexes":
            created = doc["indexes"][0]
            self.search_indexes = [{
                "id": "1", "name": created["name"], "type": created["type"],
                "status": "READY" if self.new_index_queryable else "PENDING",
                "queryable": self.new_index_queryable, "latestDefinition": created["definition"],
            }]
            return request.ok(indexesCreated=[{"id": "1", "name": created["name"]}])
        if name == "update":
            return request.ok(n=len(doc["updates"]), nModified=0, upserted=[
                {"index": i, "_id": statement["q"]["_id"]} for i, statement in enumerate(doc["updates"])
            ])
        if name == "delete":
            return request.ok(n=0)
        return request.ok()  # create, createIndexes, updateSearchIndex, dropSearchIndex, drop

    def _aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        first = pipeline[0]
        if "$listSearchIndexes" in first:
            return list(self.search_indexes)
        if "$vectorSearch" in first:
            return list(self.hits)
        if "$match" in first:  # count_documents
            return [{"_id": 1, "n": self.count}] if self.count else []
        raise AssertionError(f"unexpected pipeline {pipeline}")

    def _cursor(self, collection: str, batch: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": 0, "ns": f"{DATABASE}.{collection}", "firstBatch": batch}


def _plain(value: Any) -> Any:
    """OrderedDicts to dicts, recursively, so assertions read as plain literals."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _index_description(dimension: int, queryable: bool) -> dict[str, Any]:
    return {
        "id": "1", "name": INDEX_NAME, "type": "vectorSearch",
        "status": "READY" if queryable else "BUILDING", "queryable": queryable,
        "latestDefinition": {"fields": [
            {"type": "vector", "path": "vector", "numDimensions": dimension, "similarity": "cosine"},
        ]},
    }


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unit(seed: int, dimension: int = DIMENSION) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def fake_atlas():
    fake = FakeAtlasWire().start()
    yield fake
    fake.stop()


@pytest.fixture
def make_atlas(fake_atlas):
    built: list[AtlasVectorIndex] = []

    def factory(layout: str = "per_org", exact_below: int = 10_000, timeout_ms: int = 2000, uri: str | None = None,
                factor: int = 20) -> AtlasVectorIndex:
        index = AtlasVectorIndex(uri=uri or fake_atlas.uri, database=DATABASE, layout=layout, timeout_ms=timeout_ms,
                                 num_candidates_factor=factor, exact_below=exact_below)
        built.append(index)
        return index

    yield factory
    for index in built:
        index.close()


@pytest.fixture
def atlas_settings(settings, fake_atlas):
    """The whole service switched to the Atlas backend, talking to the fake Atlas."""
    settings.FACEPORTAL_VECTOR_STORE = "atlas"
    settings.MONGODB_URI = fake_atlas.uri
    settings.MONGODB_DATABASE = DATABASE
    settings.MONGODB_LAYOUT = "per_org"
    settings.MONGODB_TIMEOUT_MS = 1000
    reset_index()
    yield settings
    index = get_index()
    if isinstance(index, AtlasVectorIndex):
        index.close()
    reset_index()


# --- index lifecycle ----------------------------------------------------------------------------
def test_creating_an_organisation_creates_its_vector_index_with_the_engine_dimension(atlas_settings, fake_atlas):
    org = organization_create(slug="acme")
    collection = f"faces_org_{org.pk}"
    assert fake_atlas.sent_names()[:3] == ["create", "aggregate", "createSearchIndexes"]
    assert fake_atlas.sent("create")[0]["create"] == collection
    assert fake_atlas.pipelines("$listSearchIndexes") == [[{"$listSearchIndexes": {"name": INDEX_NAME}}]]
    command = fake_atlas.sent("createSearchIndexes")[0]
    assert command["createSearchIndexes"] == collection
    assert command["indexes"] == [{
        "name": INDEX_NAME,
        "type": "vectorSearch",
        "definition": {"fields": [
            {"type": "vector", "path": "vector", "numDimensions": get_engine().dimension, "similarity": "cosine"},
            {"type": "filter", "path": "person_id"},
        ]},
    }]


def test_shared_layout_has_one_index_filtered_by_organisation(make_atlas, fake_atlas):
    index = make_atlas(layout="shared")
    index.ensure_organization(organization_id=7, dimension=512)
    index.ensure_organization(organization_id=8, dimension=512)
    assert fake_atlas.sent("create")[0]["create"] == "faces"
    assert fake_atlas.sent("createIndexes")[0]["indexes"][0]["key"] == {"organization": 1}
    created = fake_atlas.sent("createSearchIndexes")
    assert len(created) == 1, "one index serves every organisation"
    assert created[0]["createSearchIndexes"] == "faces"
    assert created[0]["indexes"][0]["definition"]["fields"] == [
        {"type": "vector", "path": "vector", "numDimensions": 512, "similarity": "cosine"},
        {"type": "filter", "path": "person_id"},
        {"type": "filter", "path": "organization"},
    ]


def test_existing_index_is_kept_and_a_new_dimension_updates_it(make_atlas, fake_atlas):
    fake_atlas.queryable_index(dimension=128)
    index = make_atlas()
    index.ensure_organization(organization_id=7, dimension=128)
    assert fake_atlas.sent("createSearchIndexes") == [] and fake_atlas.sent("updateSearchIndex") == []
    index.ensure_organization(organization_id=7, dimension=512)  # the model changed
    update = fake_atlas.sent("updateSearchIndex")[0]
    assert update["updateSearchIndex"] == "faces_org_7" and update["name"] == INDEX_NAME
    assert update["definition"]["fields"][0]["numDimensions"] == 512


def test_dropping_an_organisation_drops_its_index_and_collection(make_atlas, fake_atlas):
    make_atlas().drop_organization(organization_id=7)
    assert fake_atlas.sent_names() == ["dropSearchIndex", "drop"]
    assert fake_atlas.sent("dropSearchIndex")[0] == {"dropSearchIndex": "faces_org_7", "name": INDEX_NAME,
                                                     "$db": DATABASE}
    assert fake_atlas.sent("drop")[0]["drop"] == "faces_org_7"


def test_dropping_an_organisation_in_the_shared_layout_deletes_only_its_vectors(make_atlas, fake_atlas):
    make_atlas(layout="shared").drop_organization(organization_id=7)
    assert fake_atlas.sent_names() == ["delete"]
    assert fake_atlas.sent("delete")[0]["deletes"] == [{"q": {"organization": 7}, "limit": 0}]


# --- search -------------------------------------------------------------------------------------
def test_small_gallery_search_is_exact_with_vector_search_first(make_atlas, fake_atlas):
    fake_atlas.queryable_index()
    fake_atlas.count = 3
    fake_atlas.hits = [{"_id": 11, "person_id": 1, "score": 0.97}, {"_id": 12, "person_id": 2, "score": 0.61}]
    query = unit(1)
    hits = make_atlas().search(organization_id=7, vectors=query, k=5, min_similarity=0.6)
    [pipeline] = fake_atlas.pipelines("$vectorSearch")
    stage = pipeline[0]["$vectorSearch"]
    assert set(stage) == {"index", "path", "queryVector", "limit", "exact"}, "exact search takes no numCandidates"
    assert stage["index"] == INDEX_NAME and stage["path"] == "vector"
    assert stage["limit"] == 5 and stage["exact"] is True
    assert np.allclose(stage["queryVector"], query)
    assert pipeline[1] == {"$project": {"_id": 1, "person_id": 1, "score": {"$meta": "vectorSearchScore"}}}
    assert [(h.face_id, h.person_id, h.similarity) for h in hits[0]] == [(11, 1, 0.97), (12, 2, 0.61)]


def test_threshold_drops_hits_below_it(make_atlas, fake_atlas):
    fake_atlas.queryable_index()
    fake_atlas.count = 3
    fake_atlas.hits = [{"_id": 11, "person_id": 1, "score": 0.97}, {"_id": 12, "person_id": 2, "score": 0.61}]
    hits = make_atlas().search(organization_id=7, vectors=unit(1), k=5, min_similarity=0.9)
    assert [hit.face_id for hit in hits[0]] == [11]


def test_large_gallery_search_is_approximate_with_num_candidates_and_organisation_filter(make_atlas, fake_atlas):
    fake_atlas.queryable_index()
    fake_atlas.count = 50_000
    index = make_atlas(layout="shared", exact_below=10_000, factor=20)
    index.search(organization_id=7, vectors=np.stack([unit(1), unit(2)]), k=8)
    pipelines = fake_atlas.pipelines("$vectorSearch")
    assert len(pipelines) == 2, "one $vectorSearch per query face"
    stage = pipelines[0][0]["$vectorSearch"]
    assert stage["numCandidates"] == 160 and stage["limit"] == 8 and "exact" not in stage
    assert stage["filter"] == {"organization": {"$eq": 7}}
    count = fake_atlas.pipelines("$match")[0]
    assert count[0] == {"$match": {"organization": 7}}, "the gallery size is counted within the organisation"


def test_num_candidates_is_capped_at_ten_thousand(make_atlas, fake_atlas):
    fake_atlas.queryable_index()
    fake_atlas.count = 50_000
    make_atlas(exact_below=0, factor=20).search(organization_id=7, vectors=unit(1), k=1000)
    stage = fake_atlas.pipelines("$vectorSearch")[0][0]["$vectorSearch"]
    assert stage["numCandidates"] == 10_000 and stage["limit"] == 1000


def test_until_the_index_is_queryable_searches_are_exact_scans_then_vector_search(make_atlas, fake_atlas):
    fake_atlas.queryable_index(queryable=False)
    fake_atlas.count = 2
    fake_atlas.documents = [
        {"_id": 11, "person_id": 1, "vector": unit(1).tolist()},
        {"_id": 12, "person_id": 2, "vector": unit(2).tolist()},
    ]
    index = make_atlas()
    hits = index.search(organization_id=7, vectors=unit(1), k=2)
    assert [hit.face_id for hit in hits[0]] == [11, 12]
    assert hits[0][0].similarity == pytest.approx(1.0, abs=1e-5)
    assert fake_atlas.pipelines("$vectorSearch") == [], "an index that is not queryable is not asked"
    assert fake_atlas.sent("find")[0]["projection"] == {"_id": 1, "person_id": 1, "vector": 1}

    fake_atlas.queryable_index(queryable=True)
    fake_atlas.hits = [{"_id": 11, "person_id": 1, "score": 0.99}]
    fake_atlas.clear()
    index.search(organization_id=7, vectors=unit(1), k=2)
    assert fake_atlas.sent_names() == ["aggregate", "aggregate"]  # the poll, then $vectorSearch
    assert fake_atlas.pipelines("$listSearchIndexes") and fake_atlas.pipelines("$vectorSearch")

    fake_atlas.clear()
    index.search(organization_id=7, vectors=unit(1), k=2)
    assert fake_atlas.pipelines("$listSearchIndexes") == [], "once queryable, the status is not polled again"


def test_an_empty_gallery_filled_by_another_worker_is_searched_at_once(make_atlas, fake_atlas):
    fake_atlas.queryable_index()
    index = make_atlas()
    assert index.search(organization_id=7, vectors=unit(1), k=3) == [[]]
    fake_atlas.count = 1  # another process registered a face
    fake_atlas.hits = [{"_id": 11, "person_id": 1, "score": 0.97}]
    assert [hit.face_id for hit in index.search(organization_id=7, vectors=unit(1), k=3)[0]] == [11]


def test_wait_until_queryable_polls_list_search_indexes(make_atlas, fake_atlas):
    fake_atlas.queryable_index(queryable=False)
    polls = {"n": 0}
    original = fake_atlas._aggregate

    def becomes_queryable_on_third_poll(pipeline):
        if "$listSearchIndexes" in pipeline[0]:
            polls["n"] += 1
            fake_atlas.queryable_index(queryable=polls["n"] >= 3)
        return original(pipeline)

    fake_atlas._aggregate = becomes_queryable_on_third_poll
    assert make_atlas().wait_until_queryable(organization_id=7, timeout_s=30, poll_s=0.01) is True
    assert len(fake_atlas.pipelines("$listSearchIndexes")) == 3


def test_building_index_on_a_large_gallery_answers_503_not_an_empty_result(make_atlas, fake_atlas):
    fake_atlas.queryable_index(queryable=False)
    fake_atlas.count = 20_000
    with pytest.raises(VectorStoreUnavailable) as raised:
        make_atlas(exact_below=10_000).search(organization_id=7, vectors=unit(1), k=5)
    assert raised.value.status_code == 503 and raised.value.code == "search_index_not_ready"


def test_a_vanished_index_is_recreated_and_the_search_answered_by_a_scan(make_atlas, fake_atlas):
    fake_atlas.queryable_index()
    fake_atlas.count = 1
    index = make_atlas()
    index.search(organization_id=7, vectors=unit(1), k=1)  # learns the index is queryable
    fake_atlas.search_indexes = []  # someone dropped it: Atlas answers $vectorSearch with nothing
    fake_atlas.new_index_queryable = False
    fake_atlas.hits = []
    fake_atlas.documents = [{"_id": 11, "person_id": 1, "vector": unit(1).tolist()}]
    fake_atlas.clear()
    hits = index.search(organization_id=7, vectors=unit(1), k=1)
    assert [hit.face_id for hit in hits[0]] == [11]
    assert fake_atlas.sent("createSearchIndexes"), "the missing index is created again"


# --- writes -------------------------------------------------------------------------------------
def test_add_upserts_documents_keyed_by_face_id(make_atlas, fake_atlas):
    vector = unit(3)
    make_atlas().add(organization_id=7, records=[VectorRecord(face_id=42, person_id=5, vector=vector)])
    [update] = fake_atlas.sent("update")
    assert update["update"] == "faces_org_7" and update["ordered"] is False
    [statement] = update["updates"]
    assert statement["q"] == {"_id": 42} and statement["upsert"] is True
    assert statement["u"]["_id"] == 42 and statement["u"]["person_id"] == 5
    assert np.allclose(statement["u"]["vector"], vector)


def test_shared_layout_writes_and_deletes_are_scoped_to_the_organisation(make_atlas, fake_atlas):
    index = make_atlas(layout="shared")
    index.add(organization_id=7, records=[VectorRecord(face_id=42, person_id=5, vector=unit(3))])
    index.remove(organization_id=7, face_ids=[42, 43])
    statement = fake_atlas.sent("update")[0]["updates"][0]
    assert statement["q"] == {"_id": 42, "organization": 7} and statement["u"]["organization"] == 7
    assert fake_atlas.sent("delete")[0]["deletes"] == [{"q": {"_id": {"$in": [42, 43]}, "organization": 7}, "limit": 0}]


def test_remove_deletes_by_face_id(make_atlas, fake_atlas):
    make_atlas().remove(organization_id=7, face_ids=[42, 43])
    [delete] = fake_atlas.sent("delete")
    assert delete["delete"] == "faces_org_7"
    assert delete["deletes"] == [{"q": {"_id": {"$in": [42, 43]}}, "limit": 0}]


def test_rebuild_upserts_a_generation_then_deletes_everything_else(make_atlas, fake_atlas):
    records = [VectorRecord(face_id=i, person_id=1, vector=unit(i)) for i in range(3)]
    assert make_atlas().rebuild(organization_id=7, records=iter(records)) == 3
    assert fake_atlas.sent_names() == ["update", "delete"], "never emptied first: searches keep answering"
    statements = fake_atlas.sent("update")[0]["updates"]
    generation = statements[0]["u"]["generation"]
    assert [s["q"] for s in statements] == [{"_id": 0}, {"_id": 1}, {"_id": 2}]
    assert {s["u"]["generation"] for s in statements} == {generation}
    assert fake_atlas.sent("delete")[0]["deletes"] == [{"q": {"generation": {"$ne": generation}}, "limit": 0}]


# --- outages ------------------------------------------------------------------------------------
def test_unreachable_server_raises_503_and_never_logs_the_password(make_atlas, fake_atlas, caplog):
    index = make_atlas(uri=f"mongodb://faceportal:pa55-w0rd-secret@127.0.0.1:{closed_port()}/?directConnection=true",
                       timeout_ms=200)
    caplog.set_level(logging.DEBUG)
    operations = [
        lambda: index.ensure_organization(organization_id=7, dimension=DIMENSION),
        lambda: index.search(organization_id=7, vectors=unit(1), k=3),
        lambda: index.add(organization_id=7, records=[VectorRecord(face_id=1, person_id=1, vector=unit(1))]),
        lambda: index.remove(organization_id=7, face_ids=[1]),
        lambda: index.drop_organization(organization_id=7),
        lambda: index.face_ids(organization_id=7),
    ]
    for operation in operations:
        with pytest.raises(VectorStoreUnavailable) as raised:
            operation()
        assert raised.value.status_code == 503 and "secret" not in raised.value.message
    ready, message = index.ready()
    assert ready is False and "faceportal:***@" in message and "secret" not in message
    assert "pa55-w0rd-secret" not in caplog.text
    assert "vector store" in caplog.text  # the failures were logged, without the password


def test_server_that_does_not_answer_raises_503(make_atlas, fake_atlas):
    fake_atlas.silent = True
    index = make_atlas(timeout_ms=200)
    with pytest.raises(VectorStoreUnavailable):
        index.search(organization_id=7, vectors=unit(1), k=3)
    with pytest.raises(VectorStoreUnavailable):
        index.add(organization_id=7, records=[VectorRecord(face_id=1, person_id=1, vector=unit(1))])


def test_malformed_uri_answers_503_and_never_logs_the_password(make_atlas, caplog):
    index = make_atlas(uri="mongodb://faceportal:pa55-w0rd-secret@db.example:notaport/")
    with pytest.raises(VectorStoreUnavailable) as raised:
        index.count(organization_id=7)
    assert "MONGODB_URI" in raised.value.message
    [record] = [r for r in caplog.records if r.name == "faces.index.atlas"]
    assert record.mongodb == "mongodb://faceportal:***@db.example:notaport/"
    assert "pa55-w0rd-secret" not in caplog.text


def test_redact_uri_hides_only_the_password():
    assert redact_uri("mongodb+srv://app:s%40cret@cluster0.example.net/?retryWrites=true") == (
        "mongodb+srv://app:***@cluster0.example.net/?retryWrites=true"
    )
    assert redact_uri("mongodb://localhost:27017/?directConnection=true") == (
        "mongodb://localhost:27017/?directConnection=true"
    )


# --- the service over the API -------------------------------------------------------------------
@pytest.fixture
def photo_b64(manifest) -> str:
    return base64.b64encode(manifest["Barack_Obama"][0].path.read_bytes()).decode()


def atlas_stops_answering(fake: FakeAtlasWire) -> None:
    fake.silent = True
    # The same index object (it remembers which organisations have their index), reconnecting
    # with short timeouts so the test does not wait long for each 503.
    index = get_index()
    index.close()
    index.timeout_ms = 300


def test_api_answers_503_json_and_writes_nothing_when_atlas_does_not_answer(
    atlas_settings, fake_atlas, make_key, photo_b64, caplog
):
    org = organization_create(slug="acme")  # index created while Atlas answers
    client = key_client(make_key(org))
    atlas_stops_answering(fake_atlas)

    response = client.post("/recognize/acme", {"image": photo_b64}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "vector_store_unavailable"

    # The duplicate-identity check searches first: Atlas's silence stops the registration there.
    response = client.post("/register/acme", {"name": "Barack Obama", "images": [photo_b64]}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "vector_store_unavailable"
    assert not Person.objects.filter(organization=org).exists()
    # Without that check the rows are written, the vector add fails, and the rows are rolled back.
    response = client.post("/register/acme", {"name": "Barack Obama", "images": [photo_b64],
                                              "allow_duplicate": True}, format="json")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "vector_store_unavailable"
    assert "vector store add failed" in caplog.text, "the face rows were written, then rolled back"
    assert not Person.objects.filter(organization=org).exists()
    assert not Face.objects.filter(organization=org).exists()


def test_deleting_a_person_while_atlas_is_down_keeps_the_person_whole(atlas_settings, fake_atlas, make_key):
    org = organization_create(slug="acme")
    client = key_client(make_key(org))
    person = Person.objects.create(organization=org, name="Ada")
    Face.objects.create(organization=org, person=person, model_name="Dlib", embedding=unit(1).tobytes(),
                        box={"x": 0, "y": 0, "w": 10, "h": 10})
    atlas_stops_answering(fake_atlas)
    response = client.delete(f"/orgs/acme/people/{person.pk}")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "vector_store_unavailable"
    assert Face.objects.filter(person=person).count() == 1


def test_organisation_deleted_while_atlas_is_down_leaves_strays_that_repair_drops(atlas_settings, fake_atlas):
    org = organization_create(slug="acme")
    org_id = org.pk
    atlas_stops_answering(fake_atlas)
    organization_delete(organization=org)  # the database is the truth: the tenant is gone
    fake_atlas.silent = False
    fake_atlas.collections = [f"faces_org_{org_id}"]
    fake_atlas.clear()

    with pytest.raises(CommandError):
        call_command("vectors", "check")
    assert fake_atlas.sent("listCollections")

    call_command("vectors", "repair")
    assert fake_atlas.sent("dropSearchIndex")[0]["dropSearchIndex"] == f"faces_org_{org_id}"
    assert fake_atlas.sent("drop")[0]["drop"] == f"faces_org_{org_id}"
