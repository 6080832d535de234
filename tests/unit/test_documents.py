"""The documents service (app/documents.py) over fakes: hash embedder, memory store.

What it must hold: uploads go through the CLI's write path (same ids, same hashes),
re-uploads write nothing, a broken file costs only itself, a delete leaves the
store and BM25 in agreement, and the process is told to reload after each change.
"""

from __future__ import annotations

import fcntl
import io
from pathlib import Path

import pytest

from app.config import Settings
from app.documents import (
    STAGING,
    DocumentInFile,
    DocumentNotFound,
    DocumentService,
    upload_name,
)
from app.embeddings import HashEmbedder
from app.retrieval.bm25 import BM25Index, fingerprint
from app.retrieval.lock import LOCK_NAME, index_lock
from app.retrieval.store import MemoryStore
from ingest.pipeline import ingest

pytestmark = pytest.mark.unit

TRADE_IN_EN = b"""---
title: Trade-in Programme
---
# Trade-in Programme

Send us your old headphones and get a trade-in voucher worth 15% of the new item.
The voucher is emailed within 5 working days after the old headphones arrive.
"""
TRADE_IN_ZH = "# 以旧换新\n\n寄回旧耳机，可获得新商品价格百分之十五的以旧换新抵用券。".encode()
ROWS = (
    b'{"id": "row-a", "text": "Alpha row about umbrellas."}\n'
    b'{"id": "row-b", "text": "Beta row about raincoats."}\n'
)


class Shop:
    """A service over a memory store that counts how often it asked for a reload."""

    def __init__(self, data_dir: Path) -> None:
        self.settings = Settings(
            data_dir=data_dir, store={"backend": "memory"}, embedding={"backend": "fake"}
        )
        self.store = MemoryStore()
        self.reloads = 0
        self.service = DocumentService(self.settings, self.store, HashEmbedder(), self._reload)

    def _reload(self) -> None:
        self.reloads += 1

    def upload(self, *files: tuple[str, bytes]) -> object:
        return self.service.upload([(name, io.BytesIO(data)) for name, data in files])

    def doc_ids(self) -> set[str]:
        return {c.doc_id for c in self.store.scan()}

    def bm25_agrees(self) -> bool:
        index = BM25Index.load(self.settings.bm25_path)
        return index is not None and index.fingerprint == fingerprint(self.store.scan())


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return Shop(tmp_path / "data")


def test_upload_stores_the_file_and_ingests_it(shop: Shop) -> None:
    report = shop.service.upload(
        [("trade-in.en.md", io.BytesIO(TRADE_IN_EN)), ("以旧换新.zh.md", io.BytesIO(TRADE_IN_ZH))]
    )
    assert [f.status for f in report.files] == ["added", "added"]
    assert [f.error for f in report.files] == [None, None]
    assert shop.doc_ids() == {"trade-in.en.md", "以旧换新.zh.md"}
    assert report.chunks_written == shop.store.count() > 0
    assert (shop.settings.uploads_dir / "trade-in.en.md").read_bytes() == TRADE_IN_EN
    assert shop.bm25_agrees()
    assert shop.reloads == 1
    listed = {d.doc_id: d for d in shop.service.documents()}
    en, zh = listed["trade-in.en.md"], listed["以旧换新.zh.md"]
    assert (en.title, en.lang, en.kind, en.upload) == (
        "Trade-in Programme",
        "en",
        "policy",
        "trade-in.en.md",
    )
    assert (zh.lang, zh.complete) == ("zh", True)
    assert en.chunks == report.files[0].documents[0].chunks
    assert len(en.content_hash) == 16
    assert not any((shop.settings.uploads_dir / STAGING).iterdir())  # nothing left staged


def test_same_content_again_writes_nothing_and_does_not_reload(shop: Shop) -> None:
    shop.upload(("trade-in.en.md", TRADE_IN_EN))
    again = shop.service.upload([("trade-in.en.md", io.BytesIO(TRADE_IN_EN))])
    assert again.chunks_written == 0
    assert [(f.status, f.chunks_written) for f in again.files] == [("unchanged", 0)]
    assert again.files[0].documents[0].change == "unchanged"
    assert again.files[0].documents[0].chunks > 0
    assert shop.reloads == 1


def test_uploads_are_what_the_cli_would_ingest_from_the_uploads_folder(shop: Shop) -> None:
    shop.upload(("trade-in.en.md", TRADE_IN_EN), ("rows.jsonl", ROWS))
    hashes = {d.doc_id: d.content_hash for d in shop.service.documents()}
    report = ingest(
        [shop.settings.uploads_dir],
        embedder=HashEmbedder(),
        store=shop.store,
        chunking=shop.settings.chunking,
        bm25_path=shop.settings.bm25_path,
    )
    assert (report.documents, report.unchanged, report.chunks_written) == (3, 3, 0)
    assert {d.doc_id: d.content_hash for d in shop.service.documents()} == hashes


def test_a_broken_file_is_refused_alone(shop: Shop) -> None:
    report = shop.service.upload(
        [
            ("broken.jsonl", io.BytesIO(b'{"id": "x", "text": "fine"}\n{not json\n')),
            ("trade-in.en.md", io.BytesIO(TRADE_IN_EN)),
            ("bad.pdf", io.BytesIO(b"%PDF-1.4 this is not a pdf")),
            ("latin1.txt", io.BytesIO("caf\xe9".encode("latin-1"))),
        ]
    )
    broken, good, pdf, latin = report.files
    assert (broken.status, broken.error) == (
        "failed",
        "line 2: invalid JSON (Expecting property name enclosed in double quotes)",
    )
    assert pdf.status == "failed"
    assert "PDF" in str(pdf.error)
    assert "UTF-8" in str(latin.error)
    assert good.status == "added"
    assert report.failed == 3
    assert shop.doc_ids() == {"trade-in.en.md"}
    kept = sorted(p.name for p in shop.settings.uploads_dir.iterdir() if p.name != STAGING)
    assert kept == ["trade-in.en.md"]


@pytest.mark.parametrize(
    ("raw", "kept"),
    [
        ("trade-in.en.md", "trade-in.en.md"),
        ("../../etc/notes.txt", "notes.txt"),
        ("C:\\Users\\shop\\退货 政策.md", "退货 政策.md"),
    ],
)
def test_upload_names_keep_the_last_part_only(raw: str, kept: str) -> None:
    assert upload_name(raw) == kept


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "no name"),
        ("../", "letters, digits"),
        (".hidden.md", "must start with a letter or digit"),
        ("run.exe", "unsupported file type"),
        ("noext", "unsupported file type"),
        ("a\nb.md", "letters, digits"),
        ("x" * 130 + ".md", "longer than"),
    ],
)
def test_bad_upload_names_are_refused(raw: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        upload_name(raw)


def test_bad_names_and_duplicates_fail_per_file(shop: Shop) -> None:
    report = shop.service.upload(
        [
            ("run.exe", io.BytesIO(b"MZ")),
            ("a.md", io.BytesIO(b"# A\n\nFirst.")),
            ("a.md", io.BytesIO(b"# A\n\nSecond.")),
        ]
    )
    assert [f.status for f in report.files] == ["failed", "added", "failed"]
    assert report.files[2].error == "the same file name twice in one upload"
    assert [c.text.endswith("First.") for c in shop.store.scan()] == [True]


def test_a_document_id_of_another_uploaded_file_is_refused(shop: Shop) -> None:
    shop.upload(("one.md", b"---\nid: shared\n---\nOne."))
    report = shop.service.upload([("two.md", io.BytesIO(b"---\nid: shared\n---\nTwo."))])
    assert report.files[0].status == "failed"
    assert (
        report.files[0].error
        == "document id 'shared' already comes from the uploaded file 'one.md'"
    )
    assert [c.text for c in shop.store.scan()] == ["One."]
    assert not (shop.settings.uploads_dir / "two.md").exists()


def test_uploading_a_file_again_replaces_it_and_drops_rows_it_lost(shop: Shop) -> None:
    shop.upload(("rows.jsonl", ROWS))
    report = shop.service.upload(
        [("rows.jsonl", io.BytesIO(b'{"id": "row-a", "text": "Alpha row, now about hats."}\n'))]
    )
    assert report.files[0].status == "updated"
    assert report.deleted == ["row-b"]
    assert [(c.doc_id, c.text) for c in shop.store.scan()] == [
        ("row-a", "Alpha row, now about hats.")
    ]
    assert shop.bm25_agrees()


def test_delete_removes_chunks_bm25_entries_and_the_file(shop: Shop) -> None:
    shop.upload(("trade-in.en.md", TRADE_IN_EN), ("rows.jsonl", ROWS))
    chunks = next(d.chunks for d in shop.service.documents() if d.doc_id == "trade-in.en.md")
    reloads = shop.reloads
    report = shop.service.delete("trade-in.en.md")
    assert (report.deleted, report.chunks_deleted) == (["trade-in.en.md"], chunks)
    assert report.file_removed == "trade-in.en.md"
    assert shop.doc_ids() == {"row-a", "row-b"}
    assert not (shop.settings.uploads_dir / "trade-in.en.md").exists()
    index = BM25Index.load(shop.settings.bm25_path)
    assert index is not None
    assert index.search("trade-in voucher headphones", 5) == []
    assert shop.bm25_agrees()
    assert shop.reloads == reloads + 1
    with pytest.raises(DocumentNotFound):
        shop.service.delete("trade-in.en.md")


def test_one_row_of_a_file_is_deleted_only_with_its_file(shop: Shop) -> None:
    shop.upload(("rows.jsonl", ROWS))
    with pytest.raises(DocumentInFile, match=r"one of 2 in the uploaded file 'rows\.jsonl'"):
        shop.service.delete("row-a")
    assert shop.doc_ids() == {"row-a", "row-b"}
    report = shop.service.delete("row-a", whole_file=True)
    assert sorted(report.deleted) == ["row-a", "row-b"]
    assert shop.doc_ids() == set()
    assert not (shop.settings.uploads_dir / "rows.jsonl").exists()


def test_documents_ingested_by_the_cli_can_be_deleted_too(shop: Shop, shop_dir: Path) -> None:
    ingest(
        [shop_dir],
        embedder=HashEmbedder(),
        store=shop.store,
        chunking=shop.settings.chunking,
        bm25_path=shop.settings.bm25_path,
    )
    listed = {d.doc_id: d for d in shop.service.documents()}
    assert listed["notes.txt"].upload is None
    report = shop.service.delete("notes.txt")
    assert (report.deleted, report.file_removed) == (["notes.txt"], None)
    assert "notes.txt" not in shop.doc_ids()
    assert shop.bm25_agrees()


def test_reindex_finishes_uploads_and_rebuilds_bm25(shop: Shop) -> None:
    shop.upload(("trade-in.en.md", TRADE_IN_EN))
    shop.store.delete_documents(["trade-in.en.md"])  # as if its chunks were lost
    shop.settings.bm25_path.unlink()
    reloads = shop.reloads
    report = shop.service.reindex()
    assert (report.files, report.documents, report.failures) == (1, 1, [])
    assert report.chunks_written == shop.store.count() == report.bm25_chunks > 0
    assert shop.bm25_agrees()
    assert shop.reloads == reloads + 1


def test_reindex_on_a_fresh_data_dir_is_empty_not_an_error(shop: Shop) -> None:
    report = shop.service.reindex()
    assert (report.files, report.chunks_written, report.bm25_chunks) == (0, 0, 0)


def test_the_write_lock_excludes_other_writers(tmp_path: Path) -> None:
    with (
        index_lock(tmp_path),
        (tmp_path / LOCK_NAME).open("a") as other,
        pytest.raises(BlockingIOError),
    ):
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    with (tmp_path / LOCK_NAME).open("a") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # free again
        fcntl.flock(other, fcntl.LOCK_UN)


def test_sample_files_of_every_format_upload(shop: Shop, shop_dir: Path) -> None:
    files = sorted(p for p in shop_dir.rglob("*") if p.is_file())
    report = shop.service.upload([(p.name, io.BytesIO(p.read_bytes())) for p in files])
    by_name = {f.filename: f for f in report.files}
    assert {f.status for f in report.files} == {"added"}, [f.error for f in report.files]
    assert {".md", ".txt", ".html", ".csv", ".jsonl"} <= {Path(n).suffix for n in by_name}
    assert shop.store.count() == report.chunks_written
