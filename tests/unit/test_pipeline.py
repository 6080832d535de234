import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from app.config import ChunkingSettings
from app.domain import Chunk
from app.embeddings import HashEmbedder, Vectors
from app.retrieval.bm25 import BM25Index, fingerprint
from app.retrieval.store import MemoryStore
from ingest.pipeline import IngestReport, ingest

pytestmark = pytest.mark.unit


@pytest.fixture
def shop(shop_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "shop"
    shutil.copytree(shop_dir, target)
    return target


def _run(shop: Path, store: MemoryStore, **kwargs: object) -> IngestReport:
    return ingest(
        [shop],
        embedder=HashEmbedder(),
        store=store,
        chunking=ChunkingSettings(),
        bm25_path=shop.parent / "bm25.json.gz",
        **kwargs,  # type: ignore[arg-type]
    )


def test_first_ingest_then_unchanged_reingest_writes_nothing(shop: Path) -> None:
    store = MemoryStore()
    first = _run(shop, store)
    assert first.ok
    assert first.added == first.documents > 0
    assert store.count() == first.chunks_written
    again = _run(shop, store)
    assert (again.chunks_written, again.added, again.updated) == (0, 0, 0)
    assert again.unchanged == first.documents
    assert again.bm25_rebuilt is False


def test_changed_document_replaces_its_chunks(shop: Path) -> None:
    store = MemoryStore()
    _run(shop, store)
    path = shop / "notes.txt"
    path.write_text("门店营业时间改为每天十点到二十点。", encoding="utf-8")
    report = _run(shop, store)
    assert (report.updated, report.added, report.chunks_written) == (1, 0, 1)
    texts = [c.text for c in store.scan() if c.doc_id == "notes.txt"]
    assert texts == ["门店营业时间改为每天十点到二十点。"]


def test_prune_deletes_documents_that_disappeared(shop: Path) -> None:
    store = MemoryStore()
    _run(shop, store)
    (shop / "notes.txt").unlink()
    assert _run(shop, store).deleted == 0  # without --prune nothing is removed
    report = _run(shop, store, prune=True)
    assert report.deleted == 1
    assert all(c.doc_id != "notes.txt" for c in store.scan())
    index = BM25Index.load(shop.parent / "bm25.json.gz")
    assert index is not None
    assert index.fingerprint == fingerprint(store.scan())


def test_broken_file_is_reported_and_the_rest_goes_in(shop: Path) -> None:
    (shop / "broken.jsonl").write_text('{"id": "ok", "text": "fine"}\n{oops\n', encoding="utf-8")
    store = MemoryStore()
    report = _run(shop, store, prune=True)
    assert not report.ok
    assert [f.path.endswith("broken.jsonl") for f in report.failures] == [True]
    assert "line 2" in report.failures[0].reason
    assert report.pruned_skipped is True
    assert store.count() > 0


class CrashingStore(MemoryStore):
    """Dies after writing part of the second upsert, like a killed process."""

    def __init__(self) -> None:
        super().__init__()
        self.upserts = 0

    def upsert(self, chunks: Sequence[Chunk], vectors: Vectors) -> None:
        self.upserts += 1
        if self.upserts == 2:
            super().upsert(chunks[:1], vectors[:1])
            raise KeyboardInterrupt("killed")
        super().upsert(chunks, vectors)


def test_rerun_after_a_crash_finishes_the_job(shop: Path) -> None:
    reference = MemoryStore()
    _run(shop, reference)
    store = CrashingStore()
    with pytest.raises(KeyboardInterrupt):
        ingest(
            [shop],
            embedder=HashEmbedder(),
            store=store,
            chunking=ChunkingSettings(),
            bm25_path=shop.parent / "bm25.json.gz",
            batch_chunks=2,
        )
    report = _run(shop, store)
    assert report.ok
    assert sorted(c.id for c in store.scan()) == sorted(c.id for c in reference.scan())
    index = BM25Index.load(shop.parent / "bm25.json.gz")
    assert index is not None
    assert index.fingerprint == fingerprint(store.scan())


def test_new_chunk_size_rechunks_unchanged_documents(shop: Path) -> None:
    store = MemoryStore()
    first = _run(shop, store)
    report = ingest(
        [shop],
        embedder=HashEmbedder(),
        store=store,
        chunking=ChunkingSettings(chunk_tokens=64, overlap_tokens=8),
        bm25_path=shop.parent / "bm25.json.gz",
    )
    assert report.updated == first.documents
    assert report.unchanged == 0
