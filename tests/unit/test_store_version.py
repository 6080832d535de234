"""A store shared by several servers carries a version: ingests publish it, servers follow it.

The real chroma server is in tests/integration/test_scale_out.py; here a memory store with
a version stands in for it, and two data dirs stand for two machines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.domain import Chunk
from app.retrieval.bm25 import fingerprint, refresh_bm25
from app.retrieval.lexical import LexicalIndex
from app.retrieval.store import MemoryStore, VersionedStore
from tests.support.settings import real_settings

pytestmark = pytest.mark.unit


class SharedStore(MemoryStore):
    """A memory store with the version a chroma server keeps in its collection metadata."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[str] = []

    def version(self) -> str | None:
        return self.published[-1] if self.published else None

    def set_version(self, version: str) -> None:
        self.published.append(version)


def _chunk(cid: str, text: str) -> Chunk:
    return Chunk(cid, cid.split("#")[0], text, {"title": "", "content_hash": cid})


def _write(store: SharedStore, *chunks: Chunk) -> None:
    store.upsert(list(chunks), np.zeros((len(chunks), 4), dtype=np.float32))


RETURNS = _chunk("returns#0", "Items can be returned within 30 days of delivery.")
SHIPPING = _chunk("shipping#0", "Free shipping on orders over 99 yuan.")


def test_an_ingest_publishes_its_fingerprint_and_a_plain_refresh_does_not(tmp_path: Path) -> None:
    store = SharedStore()
    assert isinstance(store, VersionedStore)
    _write(store, RETURNS)
    refresh_bm25(store, tmp_path / "a.json.gz")  # a store without a version gets one
    assert store.published == [fingerprint([RETURNS])]
    _write(store, SHIPPING)
    refresh_bm25(store, tmp_path / "b.json.gz")  # a server catching up publishes nothing
    assert len(store.published) == 1
    assert refresh_bm25(store, tmp_path / "a.json.gz", force=True) is True  # an ingest
    assert store.published[-1] == fingerprint([RETURNS, SHIPPING])


def test_a_server_sees_each_ingest_made_elsewhere_once(tmp_path: Path) -> None:
    store = SharedStore()
    _write(store, RETURNS)
    ingest_machine = real_settings(tmp_path / "ingest")
    refresh_bm25(store, ingest_machine.bm25_path, force=True)
    replica = LexicalIndex(store, real_settings(tmp_path / "replica"))
    assert replica.current.search("shipping", 1) == []
    assert not replica.changed_elsewhere()

    _write(store, SHIPPING)  # another machine ingests
    assert not replica.changed_elsewhere()  # nothing published yet: still mid-ingest
    refresh_bm25(store, ingest_machine.bm25_path, force=True)
    assert replica.changed_elsewhere()
    replica.reload()
    assert replica.current.search("shipping", 1)[0][0] == "shipping#0"
    assert not replica.changed_elsewhere()


def test_a_store_without_versions_never_reports_a_change(tmp_path: Path) -> None:
    store = MemoryStore()
    index = LexicalIndex(store, real_settings(tmp_path))
    store.upsert([RETURNS], np.zeros((1, 4), dtype=np.float32))
    assert not index.changed_elsewhere()
