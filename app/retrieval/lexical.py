"""The BM25 index a running process reads, reloaded after an ingest without a restart."""

from __future__ import annotations

import logging
import threading

from app.config import Settings
from app.retrieval.bm25 import BM25Index, refresh_bm25
from app.retrieval.lock import index_lock
from app.retrieval.store import VectorStore, VersionedStore

logger = logging.getLogger(__name__)


class LexicalIndex:
    """The BM25 index in use; swapped atomically after an ingest.

    Readers take `current` without a lock: a reload builds the new index aside and
    replaces the reference in one assignment, so a request sees the old index or the
    new one, never half of either. The reload runs under the data dir's write lock,
    so it never reads (or rebuilds) the index while an ingest is writing it.
    """

    def __init__(self, store: VectorStore, settings: Settings) -> None:
        self._store = store
        self._path = settings.bm25_path
        self._data_dir = settings.data_dir
        self._lock = threading.Lock()
        self._seen: str | None = None
        self.current = self.reload()

    def reload(self) -> BM25Index:
        with self._lock, index_lock(self._data_dir):
            if isinstance(self._store, VersionedStore):
                # Read before the scan: an ingest that publishes meanwhile is seen next time.
                self._seen = self._store.version()
            if refresh_bm25(self._store, self._path):
                logger.warning("BM25 index was missing or stale; rebuilt from the vector store")
            index = BM25Index.load(self._path)
            assert index is not None
            self.current = index
            return index

    def changed_elsewhere(self) -> bool:
        """Whether a shared store (a chroma server) has a version this index was not
        reloaded for: an ingest on another machine changed it. Each version counts once."""
        return isinstance(self._store, VersionedStore) and self._store.version() != self._seen
