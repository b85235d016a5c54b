"""MongoDB Atlas Vector Search backend, switched on by MONGODB_URI.

Documents are keyed by face id (`_id`) and hold `person_id` and `vector` (plus `organization` in
the shared layout). Layouts (MONGODB_LAYOUT):

- `per_org`: one collection `faces_org_<id>` and one vector search index per organisation;
  creating an organisation creates its index, deleting it drops collection and index.
- `shared`: one collection `faces` and one index, `organization` a filter field; for deployments
  with more tenants than Atlas' advised ~2,500 search indexes per cluster.

Atlas builds search indexes asynchronously. Until an organisation's index reports `queryable`,
its searches scan its vectors here (exact cosine, like `exact: true`) when the gallery is at most
MONGODB_EXACT_BELOW vectors, and answer 503 otherwise: never a silent empty result.
Every pymongo failure becomes `VectorStoreUnavailable` (503); the URI's password is never logged.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import unquote

import numpy as np
from django.conf import settings
from pymongo import DeleteMany, MongoClient, ReplaceOne
from pymongo.collection import Collection
from pymongo.errors import OperationFailure, PyMongoError
from pymongo.operations import SearchIndexModel

from faces.index.base import Hit, VectorIndex, VectorRecord, VectorStoreUnavailable, cosine_to_similarity

logger = logging.getLogger(__name__)

LAYOUTS = ("per_org", "shared")
INDEX_NAME = "faces_vector"
SHARED_COLLECTION = "faces"
ORG_COLLECTION_PREFIX = "faces_org_"
VECTOR_PATH = "vector"
MAX_CANDIDATES = 10_000  # Atlas' ceiling for numCandidates and limit
WRITE_BATCH = 500
GALLERY_SIZE_TTL_S = 30.0  # a non-zero size only picks exact vs approximate search: staleness is harmless
INDEX_NOT_FOUND = 27  # OperationFailure code for dropping a search index that is not there
NAMESPACE_EXISTS = 48


_USERINFO_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")


def redact_uri(uri: str) -> str:
    """The URI with its password replaced by '***', for logs and health output."""
    return _USERINFO_PASSWORD.sub(r"\1***@", uri)


def uri_password(uri: str) -> str | None:
    match = re.search(r"://[^:/@]*:([^@/]*)@", uri)
    return unquote(match.group(1)) if match else None


class AtlasVectorIndex(VectorIndex):
    name = "atlas"

    def __init__(
        self,
        *,
        uri: str,
        database: str,
        layout: str = "per_org",
        timeout_ms: int = 3000,
        num_candidates_factor: int = 20,
        exact_below: int = 10_000,
    ) -> None:
        if layout not in LAYOUTS:
            raise ValueError(f"MONGODB_LAYOUT must be one of {', '.join(LAYOUTS)}, not '{layout}'.")
        self.uri = uri
        self.database_name = database
        self.layout = layout
        self.timeout_ms = timeout_ms
        self.num_candidates_factor = max(1, num_candidates_factor)
        self.exact_below = exact_below
        self._client: MongoClient | None = None
        self._lock = threading.Lock()
        self._ensured: dict[str, int] = {}  # collection -> dimension its index was ensured with
        self._queryable: set[str] = set()  # collections whose index answered queryable
        self._sizes: dict[int, tuple[float, int]] = {}  # organisation -> (when, vectors)

    @classmethod
    def from_settings(cls) -> AtlasVectorIndex:
        if not settings.MONGODB_URI:
            raise ValueError("FACEPORTAL_VECTOR_STORE=atlas needs MONGODB_URI.")
        return cls(
            uri=settings.MONGODB_URI,
            database=settings.MONGODB_DATABASE,
            layout=settings.MONGODB_LAYOUT,
            timeout_ms=settings.MONGODB_TIMEOUT_MS,
            num_candidates_factor=settings.MONGODB_NUM_CANDIDATES_FACTOR,
            exact_below=settings.MONGODB_EXACT_BELOW,
        )

    # --- connection -----------------------------------------------------------------------------
    @property
    def client(self) -> MongoClient:
        with self._lock:
            if self._client is None:
                try:
                    # The constructor does not connect; every wait below is bounded by timeout_ms.
                    self._client = MongoClient(
                        self.uri,
                        connectTimeoutMS=self.timeout_ms,
                        serverSelectionTimeoutMS=self.timeout_ms,
                        socketTimeoutMS=self.timeout_ms,
                        appname="faceportal",
                    )
                except (PyMongoError, ValueError) as exc:  # a malformed URI, an SRV record not found
                    self._log_failure("connect", exc)
                    raise VectorStoreUnavailable(
                        "The vector store is not configured correctly (MONGODB_URI).", details={"store": "atlas"}
                    ) from None
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @contextmanager
    def _store_errors(self, action: str) -> Iterator[None]:
        try:
            yield
        except PyMongoError as exc:
            self._log_failure(action, exc)
            raise VectorStoreUnavailable(
                "The vector store is unavailable; try again shortly.", details={"store": "atlas"}
            ) from None

    def _log_failure(self, action: str, exc: Exception) -> None:
        logger.warning(
            "vector store %s failed: %s: %s",
            action,
            type(exc).__name__,
            self._redact(str(exc)),
            extra={"mongodb": redact_uri(self.uri)},
        )

    def _redact(self, text: str) -> str:
        text = text.replace(self.uri, redact_uri(self.uri))
        password = uri_password(self.uri)
        return text.replace(password, "***") if password else text

    # --- layout -----------------------------------------------------------------------------------
    def collection_name(self, organization_id: int) -> str:
        return SHARED_COLLECTION if self.layout == "shared" else f"{ORG_COLLECTION_PREFIX}{organization_id}"

    def _collection(self, organization_id: int) -> Collection:
        return self.client[self.database_name][self.collection_name(organization_id)]

    def _scope(self, organization_id: int) -> dict[str, Any]:
        """The filter that keeps every read and write inside one organisation."""
        return {"organization": organization_id} if self.layout == "shared" else {}

    def index_definition(self, dimension: int) -> dict[str, Any]:
        fields: list[dict[str, Any]] = [
            {"type": "vector", "path": VECTOR_PATH, "numDimensions": dimension, "similarity": "cosine"},
            {"type": "filter", "path": "person_id"},
        ]
        if self.layout == "shared":
            fields.append({"type": "filter", "path": "organization"})
        return {"fields": fields}

    def _document(self, organization_id: int, record: VectorRecord, **extra: Any) -> dict[str, Any]:
        document = {
            "_id": record.face_id,
            **self._scope(organization_id),
            "person_id": record.person_id,
            VECTOR_PATH: [float(value) for value in np.asarray(record.vector, dtype=np.float32)],
        }
        document.update(extra)
        return document

    # --- search index lifecycle ---------------------------------------------------------------
    def _search_index(self, collection: Collection) -> dict[str, Any] | None:
        found = list(collection.list_search_indexes(INDEX_NAME))
        return found[0] if found else None

    def ensure_organization(self, *, organization_id: int, dimension: int) -> None:
        name = self.collection_name(organization_id)
        if self._ensured.get(name) == dimension:
            return
        collection = self._collection(organization_id)
        with self._store_errors("ensure index"):
            try:
                collection.database.create_collection(name, check_exists=False)
            except OperationFailure as exc:
                if exc.code != NAMESPACE_EXISTS:
                    raise
            if self.layout == "shared":
                collection.create_index("organization")
            existing = self._search_index(collection)
            definition = self.index_definition(dimension)
            if existing is None:
                collection.create_search_index(
                    SearchIndexModel(definition=definition, name=INDEX_NAME, type="vectorSearch")
                )
                self._queryable.discard(name)
            elif _indexed_dimension(existing) != dimension:
                # A model with another dimension: Atlas rebuilds the index in place.
                collection.update_search_index(INDEX_NAME, definition)
                self._queryable.discard(name)
        self._ensured[name] = dimension

    def index_status(self, *, organization_id: int) -> dict[str, Any] | None:
        """Atlas' description of the organisation's search index (status, queryable), None if absent."""
        with self._store_errors("read index status"):
            return self._search_index(self._collection(organization_id))

    def is_queryable(self, *, organization_id: int, refresh: bool = False) -> bool:
        name = self.collection_name(organization_id)
        if name in self._queryable and not refresh:
            return True
        status = self.index_status(organization_id=organization_id)
        queryable = bool(status and status.get("queryable"))
        if queryable:
            self._queryable.add(name)
        else:
            self._queryable.discard(name)
        return queryable

    def wait_until_queryable(self, *, organization_id: int, timeout_s: float = 120.0, poll_s: float = 1.0) -> bool:
        """Poll `$listSearchIndexes` until the index is queryable; False if it was not in time."""
        deadline = time.monotonic() + timeout_s
        while not self.is_queryable(organization_id=organization_id, refresh=True):
            if time.monotonic() >= deadline:
                return False
            time.sleep(poll_s)
        return True

    def drop_organization(self, *, organization_id: int) -> None:
        name = self.collection_name(organization_id)
        collection = self._collection(organization_id)
        with self._store_errors("drop organisation"):
            if self.layout == "shared":
                collection.delete_many(self._scope(organization_id))
            else:
                try:
                    collection.drop_search_index(INDEX_NAME)
                except OperationFailure as exc:
                    if exc.code != INDEX_NOT_FOUND:
                        raise
                collection.drop()
                self._ensured.pop(name, None)
                self._queryable.discard(name)
        self._sizes.pop(organization_id, None)

    def stored_organization_ids(self) -> set[int]:
        with self._store_errors("list organisations"):
            database = self.client[self.database_name]
            if self.layout == "shared":
                return {int(value) for value in database[SHARED_COLLECTION].distinct("organization")}
            names = database.list_collection_names(filter={"name": {"$regex": f"^{ORG_COLLECTION_PREFIX}[0-9]+$"}})
            return {int(name.removeprefix(ORG_COLLECTION_PREFIX)) for name in names}

    # --- writes -------------------------------------------------------------------------------
    def add(self, *, organization_id: int, records: list[VectorRecord]) -> None:
        if not records:
            return
        collection = self._collection(organization_id)
        scope = self._scope(organization_id)
        with self._store_errors("add"):
            for batch in _batches(records, WRITE_BATCH):
                # Upserts: re-adding a face (repair, a retried request) replaces rather than fails.
                collection.bulk_write(
                    [
                        ReplaceOne({"_id": r.face_id, **scope}, self._document(organization_id, r), upsert=True)
                        for r in batch
                    ],
                    ordered=False,
                )
        self._sizes.pop(organization_id, None)

    def remove(self, *, organization_id: int, face_ids: list[int]) -> None:
        if not face_ids:
            return
        collection = self._collection(organization_id)
        scope = self._scope(organization_id)
        with self._store_errors("remove"):
            collection.bulk_write(
                [DeleteMany({"_id": {"$in": [int(i) for i in batch]}, **scope}) for batch in _batches(face_ids, 1000)],
                ordered=True,
            )
        self._sizes.pop(organization_id, None)

    def rebuild(self, *, organization_id: int, records: Iterable[VectorRecord]) -> int:
        """Upsert every record stamped with a fresh generation, then delete the rest.

        The organisation is never empty midway, so searches keep answering during a rebuild.
        """
        collection = self._collection(organization_id)
        scope = self._scope(organization_id)
        generation = uuid.uuid4().hex
        written = 0
        with self._store_errors("rebuild"):
            for batch in _batches(records, WRITE_BATCH):
                collection.bulk_write(
                    [
                        ReplaceOne(
                            {"_id": r.face_id, **scope},
                            self._document(organization_id, r, generation=generation),
                            upsert=True,
                        )
                        for r in batch
                    ],
                    ordered=False,
                )
                written += len(batch)
            collection.delete_many({**scope, "generation": {"$ne": generation}})
        self._sizes.pop(organization_id, None)
        return written

    # --- reads --------------------------------------------------------------------------------
    def count(self, *, organization_id: int) -> int:
        with self._store_errors("count"):
            return self._collection(organization_id).count_documents(self._scope(organization_id))

    def face_ids(self, *, organization_id: int) -> set[int]:
        with self._store_errors("list face ids"):
            cursor = self._collection(organization_id).find(self._scope(organization_id), {"_id": 1})
            return {int(document["_id"]) for document in cursor}

    def _gallery_size(self, organization_id: int) -> int:
        cached = self._sizes.get(organization_id)
        if cached is not None and time.monotonic() - cached[0] < GALLERY_SIZE_TTL_S:
            return cached[1]
        size = self.count(organization_id=organization_id)
        if size:  # an empty gallery is counted again: another worker may fill it any moment
            self._sizes[organization_id] = (time.monotonic(), size)
        return size

    def vector_search_stage(self, *, organization_id: int, vector: np.ndarray, k: int, exact: bool) -> dict[str, Any]:
        limit = min(k, MAX_CANDIDATES)
        stage: dict[str, Any] = {
            "index": INDEX_NAME,
            "path": VECTOR_PATH,
            "queryVector": [float(value) for value in np.asarray(vector, dtype=np.float32)],
            "limit": limit,
        }
        if exact:
            stage["exact"] = True
        else:
            stage["numCandidates"] = min(MAX_CANDIDATES, max(limit, self.num_candidates_factor * limit))
        if self.layout == "shared":
            stage["filter"] = {"organization": {"$eq": organization_id}}
        return {"$vectorSearch": stage}

    def search(
        self, *, organization_id: int, vectors: np.ndarray, k: int, min_similarity: float = 0.0
    ) -> list[list[Hit]]:
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        if k <= 0 or len(queries) == 0:
            return [[] for _ in range(len(queries))]
        size = self._gallery_size(organization_id)
        if size == 0:
            return [[] for _ in range(len(queries))]
        if not self.is_queryable(organization_id=organization_id):
            return self._search_before_index(organization_id, queries, k, min_similarity, size)
        exact = size <= self.exact_below
        results = []
        for query in queries:
            raw = self._vector_search(organization_id, query, k, exact)
            if not raw and not self.is_queryable(organization_id=organization_id, refresh=True):
                # The index went away or is rebuilding: no silent empty answer.
                return self._search_before_index(organization_id, queries, k, min_similarity, size)
            results.append([hit for hit in raw if hit.similarity >= min_similarity])
        return results

    def _vector_search(self, organization_id: int, query: np.ndarray, k: int, exact: bool) -> list[Hit]:
        pipeline = [
            self.vector_search_stage(organization_id=organization_id, vector=query, k=k, exact=exact),
            {"$project": {"_id": 1, "person_id": 1, "score": {"$meta": "vectorSearchScore"}}},
        ]
        with self._store_errors("search"):
            documents = list(self._collection(organization_id).aggregate(pipeline))
        # For cosine, Atlas' vectorSearchScore is (1 + cos) / 2: our similarity as it is.
        return [
            Hit(face_id=int(d["_id"]), person_id=int(d["person_id"]), similarity=float(d["score"])) for d in documents
        ]

    def _search_before_index(
        self, organization_id: int, queries: np.ndarray, k: int, min_similarity: float, size: int
    ) -> list[list[Hit]]:
        """Exact cosine over the organisation's vectors, read here, while Atlas builds the index."""
        if size > self.exact_below:
            raise VectorStoreUnavailable(
                "This organisation's search index is still being built; try again shortly.",
                code="search_index_not_ready",
                details={"store": "atlas"},
            )
        # Atlas cannot answer even `exact: true` before the index is queryable, so scan here.
        self.ensure_organization(organization_id=organization_id, dimension=queries.shape[1])
        with self._store_errors("scan"):
            documents = list(
                self._collection(organization_id).find(
                    self._scope(organization_id), {"_id": 1, "person_id": 1, VECTOR_PATH: 1}
                )
            )
        documents = [d for d in documents if len(d.get(VECTOR_PATH) or ()) == queries.shape[1]]
        if not documents:
            return [[] for _ in range(len(queries))]
        matrix = np.asarray([d[VECTOR_PATH] for d in documents], dtype=np.float32)
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        similarities = cosine_to_similarity(queries @ matrix.T)
        results = []
        for row in similarities:
            order = np.argsort(-row, kind="stable")[:k]
            results.append(
                [
                    Hit(face_id=int(documents[i]["_id"]), person_id=int(documents[i]["person_id"]),
                        similarity=float(row[i]))
                    for i in order
                    if row[i] >= min_similarity
                ]
            )
        return results

    def ready(self) -> tuple[bool, str]:
        try:
            with self._store_errors("ping"):
                self.client.admin.command("ping")
        except VectorStoreUnavailable:
            return False, f"MongoDB unreachable at {redact_uri(self.uri)}"
        return True, "ok"


def _indexed_dimension(description: dict[str, Any]) -> int | None:
    definition = description.get("latestDefinition") or description.get("definition") or {}
    for field in definition.get("fields", []):
        if field.get("type") == "vector":
            return field.get("numDimensions")
    return None


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch

