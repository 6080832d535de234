"""The documents a shop manages from outside: upload, list, delete, reindex (no HTTP here).

Everything is written through `ingest.pipeline.write_documents`, the same path as
`shopdesk ingest`, under the data dir's write lock (`app.retrieval.lock`), so the
vector store and the BM25 index always agree and a CLI ingest cannot interleave.

Uploaded files are kept in `<data dir>/uploads/` under their own file name, loaded
as if that folder were ingested (`shopdesk ingest <data dir>/uploads` gives the
same document ids), so a reindex can read them again. Uploading a file of the same
name replaces it: its documents are re-ingested (unchanged ones are skipped by
hash) and the ones that disappeared from it are deleted. A file that cannot be
loaded is refused with its reason before anything is written or kept.

After a change, `on_change` makes the running process see it (the server passes
`Container.documents_changed`: the BM25 index reload and the product catalogue).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from app.config import Settings
from app.domain import Chunk, Document
from app.embeddings import Embedder
from app.retrieval.bm25 import BM25Index
from app.retrieval.lock import index_lock
from app.retrieval.store import VectorStore
from ingest.loaders import SUPPORTED_SUFFIXES, LoadError, discover, load_file
from ingest.pipeline import Change, FileFailure, IngestReport, load_documents, write_documents

logger = logging.getLogger(__name__)

STAGING = ".incoming"
"""Uploads are written and checked here first; hidden, so ingesting the folder skips it."""
MAX_NAME_CHARS = 128
# Letters and digits of any script (a Chinese shop names its files in Chinese), and . _ - space.
_NAME = re.compile(r"[\w][\w.\- ]*")
FileStatus = Literal["added", "updated", "unchanged", "failed"]


class DocumentNotFound(LookupError):
    """No document with this id in the store or the uploads."""


class DocumentInFile(Exception):
    """The document is one of several in an uploaded file; deleting it alone would come
    back on the next reindex, so the caller must delete the whole file."""

    def __init__(self, doc_id: str, filename: str, documents: int) -> None:
        super().__init__(
            f"document {doc_id!r} is one of {documents} in the uploaded file {filename!r}: "
            "delete the whole file (?file=true) or upload the file again without it"
        )
        self.doc_id, self.filename, self.documents = doc_id, filename, documents


@dataclass(frozen=True)
class DocumentInfo:
    """One stored document as the list shows it."""

    doc_id: str
    title: str
    source: str
    lang: str
    kind: str
    chunks: int
    content_hash: str
    """The hash stored with its chunks: its content and how it was chunked."""
    complete: bool
    """False for a document an interrupted ingest left half written (the next one finishes)."""
    upload: str | None
    """The uploaded file it came from; None for a document ingested by the CLI."""


@dataclass(frozen=True)
class DocumentResult:
    doc_id: str
    title: str
    change: Change
    chunks: int


@dataclass
class FileResult:
    filename: str
    status: FileStatus
    documents: list[DocumentResult] = field(default_factory=list)
    chunks_written: int = 0
    error: str | None = None


@dataclass
class UploadReport:
    files: list[FileResult]
    chunks_written: int = 0
    deleted: list[str] = field(default_factory=list)
    """Documents removed because they disappeared from a file uploaded again."""
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return sum(1 for f in self.files if f.status == "failed")


@dataclass
class DeleteReport:
    deleted: list[str]
    chunks_deleted: int
    file_removed: str | None


@dataclass
class ReindexReport:
    files: int
    documents: int
    chunks_written: int
    deleted: list[str]
    bm25_chunks: int
    failures: list[FileFailure]
    seconds: float


def upload_name(raw: str) -> str:
    """The name an uploaded file is kept under, or ValueError saying why it cannot be.

    Only the last part of a path counts (browsers send bare names; others may not).
    """
    name = unicodedata.normalize("NFC", PurePosixPath(raw.replace("\\", "/")).name).strip()
    if not name:
        raise ValueError("the file has no name")
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"file name longer than {MAX_NAME_CHARS} characters")
    if not _NAME.fullmatch(name):
        raise ValueError(
            "file name may hold letters, digits, '.', '_', '-' and spaces, "
            "and must start with a letter or digit"
        )
    if PurePosixPath(name).suffix.lower() not in SUPPORTED_SUFFIXES:
        kinds = ", ".join(sorted(SUPPORTED_SUFFIXES))
        raise ValueError(f"unsupported file type (accepted: {kinds})")
    return name


@dataclass
class _Staged:
    index: int
    name: str
    path: Path
    docs: list[Document]


class DocumentService:
    """Upload, list, delete and reindex documents of one data dir; see module docstring."""

    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        embedder: Embedder,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._embedder = embedder
        self._on_change = on_change
        self._uploads = settings.uploads_dir
        self._cache_lock = threading.Lock()
        self._file_ids: dict[str, tuple[tuple[int, int], list[str]]] = {}

    # --- reading ---------------------------------------------------------------------

    def documents(self) -> list[DocumentInfo]:
        """Every document in the store, by id, with its chunk count and hash."""
        by_doc: dict[str, list[Chunk]] = defaultdict(list)
        for chunk in self._store.scan():
            by_doc[chunk.doc_id].append(chunk)
        owners = self._owners()
        out = []
        for doc_id in sorted(by_doc):
            parts = by_doc[doc_id]
            first = min(parts, key=lambda c: int(c.metadata.get("chunk_index", 0)))
            meta = first.metadata
            out.append(
                DocumentInfo(
                    doc_id=doc_id,
                    title=first.title,
                    source=str(meta.get("source", "")),
                    lang=str(meta.get("lang", "")),
                    kind=first.kind,
                    chunks=len(parts),
                    content_hash=str(meta.get("content_hash", "")),
                    complete=meta.get("n_chunks") == len(parts)
                    and len({c.metadata.get("content_hash") for c in parts}) == 1,
                    upload=owners.get(doc_id),
                )
            )
        return out

    # --- writing ---------------------------------------------------------------------

    def upload(self, files: Sequence[tuple[str, BinaryIO]]) -> UploadReport:
        """Keep and ingest each (file name, content); a file that fails is reported alone."""
        started = time.perf_counter()
        results: list[FileResult] = []
        staged: list[_Staged] = []
        stage = self._uploads / STAGING / uuid.uuid4().hex
        stage.mkdir(parents=True)
        try:
            for raw, content in files:
                results.append(FileResult(raw, "failed"))
                try:
                    name = upload_name(raw)
                except ValueError as exc:
                    results[-1].error = str(exc)
                    continue
                results[-1].filename = name
                if any(s.name == name for s in staged):
                    results[-1].error = "the same file name twice in one upload"
                    continue
                path = stage / name
                with path.open("wb") as out:
                    shutil.copyfileobj(content, out)
                try:
                    docs = load_file(path, stage)
                except LoadError as exc:
                    results[-1].error = exc.reason
                    continue
                staged.append(_Staged(len(results) - 1, name, path, docs))
            report = self._store_uploads(staged, results)
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        if report.chunks_written or report.deleted:
            self._on_change()
        report.seconds = time.perf_counter() - started
        return report

    def _store_uploads(self, staged: list[_Staged], results: list[FileResult]) -> UploadReport:
        with index_lock(self._settings.data_dir):
            owners = self._owners()
            accepted: list[_Staged] = []
            claimed: dict[str, str] = {}
            for item in staged:
                clash = self._clash(item, owners, claimed)
                if clash:
                    results[item.index].error = clash
                    continue
                claimed.update((d.id, item.name) for d in item.docs)
                accepted.append(item)
            vanished: list[str] = []
            replaced: set[str] = set()
            for item in accepted:
                old = [d for d, owner in owners.items() if owner == item.name]
                replaced.update([item.name] if old else [])
                vanished += sorted(set(old) - {d.id for d in item.docs})
                os.replace(item.path, self._uploads / item.name)
            written = self._write([d for item in accepted for d in item.docs], remove=vanished)
        report = UploadReport(results, written.chunks_written, written.deleted_ids)
        for item in accepted:
            result = results[item.index]
            result.documents = [
                DocumentResult(d.id, d.title, written.doc_change[d.id], written.doc_chunks[d.id])
                for d in item.docs
            ]
            result.chunks_written = sum(
                r.chunks for r in result.documents if r.change != "unchanged"
            )
            gone = any(owners.get(d) == item.name for d in written.deleted_ids)
            if not result.chunks_written and not gone:
                result.status = "unchanged"
            else:
                result.status = "updated" if item.name in replaced else "added"
        return report

    @staticmethod
    def _clash(item: _Staged, owners: dict[str, str], claimed: dict[str, str]) -> str | None:
        """Why this file's documents cannot go in: an id another file already has."""
        seen: set[str] = set()
        for doc in item.docs:
            if doc.id in seen:
                return f"document id {doc.id!r} twice in the file"
            seen.add(doc.id)
            other = claimed.get(doc.id) or owners.get(doc.id)
            if other is not None and other != item.name:
                return f"document id {doc.id!r} already comes from the uploaded file {other!r}"
        return None

    def delete(self, doc_id: str, *, whole_file: bool = False) -> DeleteReport:
        """Remove a document's chunks (and its uploaded file); DocumentNotFound if unknown."""
        with index_lock(self._settings.data_dir):
            owners = self._owners()
            owner = owners.get(doc_id)
            ids = [doc_id]
            if owner is not None:
                ids = [d for d, f in owners.items() if f == owner]
                if len(ids) > 1 and not whole_file:
                    raise DocumentInFile(doc_id, owner, len(ids))
            elif not any(c.doc_id == doc_id for c in self._store.scan()):
                raise DocumentNotFound(doc_id)
            written = self._write([], remove=ids)
            if owner is not None:
                (self._uploads / owner).unlink(missing_ok=True)
        self._on_change()
        return DeleteReport(written.deleted_ids, written.chunks_deleted, owner)

    def reindex(self) -> ReindexReport:
        """Read the uploads again (re-embedding what changed), rebuild BM25 from the store,
        and make this process see the store as it is (e.g. after a CLI ingest)."""
        started = time.perf_counter()
        with index_lock(self._settings.data_dir):
            self._uploads.mkdir(parents=True, exist_ok=True)
            report = IngestReport()
            docs = load_documents([self._uploads], report)
            written = self._write(docs, report=report, rebuild_bm25=True)
            index = BM25Index.load(self._settings.bm25_path)
        self._on_change()
        return ReindexReport(
            files=written.files,
            documents=written.documents,
            chunks_written=written.chunks_written,
            deleted=written.deleted_ids,
            bm25_chunks=len(index) if index is not None else 0,
            failures=written.failures,
            seconds=time.perf_counter() - started,
        )

    # --- helpers ---------------------------------------------------------------------

    def _write(
        self,
        docs: list[Document],
        *,
        remove: Sequence[str] = (),
        report: IngestReport | None = None,
        rebuild_bm25: bool = False,
    ) -> IngestReport:
        return write_documents(
            docs,
            embedder=self._embedder,
            store=self._store,
            chunking=self._settings.chunking,
            bm25_path=self._settings.bm25_path,
            report=report,
            remove=remove,
            rebuild_bm25=rebuild_bm25,
        )

    def _owners(self) -> dict[str, str]:
        """Document id → the uploaded file it comes from (files re-read only when changed)."""
        files = discover([self._uploads]) if self._uploads.is_dir() else []
        owners: dict[str, str] = {}
        with self._cache_lock:
            cache: dict[str, tuple[tuple[int, int], list[str]]] = {}
            for path in files:
                name = path.relative_to(self._uploads).as_posix()
                stat = path.stat()
                key = (stat.st_mtime_ns, stat.st_size)
                hit = self._file_ids.get(name)
                if hit is None or hit[0] != key:
                    try:
                        hit = (key, [d.id for d in load_file(path, self._uploads)])
                    except LoadError as exc:  # put there by hand: the reindex reports it
                        logger.warning("uploaded file unreadable: %s", exc)
                        continue
                cache[name] = hit
                for doc_id in hit[1]:
                    owners.setdefault(doc_id, name)
            self._file_ids = cache
        return owners
