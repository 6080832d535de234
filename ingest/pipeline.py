"""Ingest: load → chunk → embed → upsert, idempotent and safe to re-run after a crash.

A document is "stored" only when all of its chunks are in the vector store
with its current content hash, so a run that died half way through a document
is finished by the next run instead of being mistaken for unchanged. The BM25
index is rebuilt from the store at the end, so the two always agree.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from app.config import ChunkingSettings
from app.domain import Chunk, Document
from app.embeddings import Embedder
from app.retrieval.bm25 import refresh_bm25
from app.retrieval.store import VectorStore
from ingest.chunking import chunk_document, stored_hash
from ingest.loaders import LoadError, discover, load_file

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (documents done, documents to embed)."""
Change = Literal["added", "updated", "unchanged"]


@dataclass
class FileFailure:
    path: str
    reason: str


@dataclass
class IngestReport:
    files: int = 0
    documents: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks_written: int = 0
    bm25_rebuilt: bool = False
    pruned_skipped: bool = False
    seconds: float = 0.0
    failures: list[FileFailure] = field(default_factory=list)
    doc_chunks: dict[str, int] = field(default_factory=dict)
    """Chunks each loaded document has in the store after the run."""
    doc_change: dict[str, Change] = field(default_factory=dict)
    """What the run did to each loaded document."""
    deleted_ids: list[str] = field(default_factory=list)
    chunks_deleted: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


def stored_documents(chunks: Iterable[Chunk]) -> tuple[dict[str, str], set[str]]:
    """(complete doc id → content hash, ids of incomplete documents) as the store holds them."""
    by_doc: dict[str, list[Chunk]] = defaultdict(list)
    for chunk in chunks:
        by_doc[chunk.doc_id].append(chunk)
    complete: dict[str, str] = {}
    for doc_id, parts in by_doc.items():
        hashes = {str(c.metadata.get("content_hash")) for c in parts}
        expected = {c.metadata.get("n_chunks") for c in parts}
        if len(hashes) == 1 and expected == {len(parts)}:
            complete[doc_id] = hashes.pop()
    return complete, set(by_doc) - set(complete)


def embed_input(chunk: Chunk) -> str:
    """What the embedder sees: an FAQ's question, else the passage under its title."""
    if chunk.embed_text:
        return chunk.embed_text
    if chunk.title and not chunk.text.startswith(chunk.title):
        return f"{chunk.title}\n{chunk.text}"
    return chunk.text


def load_documents(paths: Sequence[Path], report: IngestReport) -> list[Document]:
    """Every readable document; unreadable files land in report.failures."""
    docs: dict[str, Document] = {}
    try:
        files = discover(paths)
    except LoadError as exc:
        report.failures.append(FileFailure(str(exc.path), exc.reason))
        return []
    for path in files:
        root = next((p for p in paths if p.is_dir() and path.is_relative_to(p)), path.parent)
        report.files += 1
        try:
            loaded = load_file(path, root)
        except LoadError as exc:
            report.failures.append(FileFailure(str(path), exc.reason))
            logger.warning("skipped %s", exc)
            continue
        for doc in loaded:
            if doc.id in docs:
                report.failures.append(FileFailure(str(path), f"duplicate document id {doc.id!r}"))
                continue
            docs[doc.id] = doc
    return list(docs.values())


def ingest(
    paths: Sequence[Path],
    *,
    embedder: Embedder,
    store: VectorStore,
    chunking: ChunkingSettings,
    bm25_path: Path,
    prune: bool = False,
    batch_chunks: int = 64,
    progress: Progress | None = None,
) -> IngestReport:
    """Bring the store in line with the documents under `paths`; see module docstring."""
    started = time.perf_counter()
    report = IngestReport()
    docs = load_documents(paths, report)
    report.seconds = time.perf_counter() - started
    return write_documents(
        docs,
        embedder=embedder,
        store=store,
        chunking=chunking,
        bm25_path=bm25_path,
        report=report,
        prune=prune,
        batch_chunks=batch_chunks,
        progress=progress,
    )


def write_documents(
    docs: Sequence[Document],
    *,
    embedder: Embedder,
    store: VectorStore,
    chunking: ChunkingSettings,
    bm25_path: Path,
    report: IngestReport | None = None,
    prune: bool = False,
    remove: Iterable[str] = (),
    rebuild_bm25: bool = False,
    batch_chunks: int = 64,
    progress: Progress | None = None,
) -> IngestReport:
    """Store loaded documents: the one write path of the CLI and the documents API.

    Unchanged documents are skipped by hash, changed ones replace their chunks,
    `remove` names documents to delete in the same run (unless they are among
    `docs`), `prune` deletes every stored document not among `docs`. The BM25
    index is rebuilt when anything changed (always with `rebuild_bm25`).
    """
    started = time.perf_counter()
    report = report if report is not None else IngestReport()
    report.documents = len(docs)
    existing = list(store.scan())
    stored, incomplete = stored_documents(existing)
    in_store = Counter(c.doc_id for c in existing)

    todo = [d for d in docs if stored.get(d.id) != stored_hash(d, chunking)]
    report.unchanged = len(docs) - len(todo)
    report.updated = sum(1 for d in todo if d.id in stored or d.id in incomplete)
    report.added = len(todo) - report.updated
    for doc in docs:
        report.doc_chunks[doc.id] = in_store[doc.id]
        report.doc_change[doc.id] = "unchanged"
    for doc in todo:
        report.doc_change[doc.id] = "updated" if doc.id in in_store else "added"

    done = 0
    pending_docs: list[Document] = []
    pending_chunks: list[Chunk] = []

    def flush() -> None:
        nonlocal done
        if not pending_docs:
            return
        vectors = embedder.embed_documents([embed_input(c) for c in pending_chunks])
        store.delete_documents([d.id for d in pending_docs])
        store.upsert(pending_chunks, vectors)
        report.chunks_written += len(pending_chunks)
        done += len(pending_docs)
        pending_docs.clear()
        pending_chunks.clear()
        if progress:
            progress(done, len(todo))

    for doc in todo:
        chunks = chunk_document(doc, chunking)
        report.doc_chunks[doc.id] = len(chunks)
        pending_docs.append(doc)
        pending_chunks.extend(chunks)
        if len(pending_chunks) >= batch_chunks:
            flush()
    flush()

    loaded_ids = {d.id for d in docs}
    orphans = incomplete - loaded_ids
    orphans |= (set(remove) & set(in_store)) - loaded_ids
    if prune:
        if report.failures:
            report.pruned_skipped = True
            logger.warning("not pruning: %d file(s) failed to load", len(report.failures))
        else:
            orphans |= set(stored) - loaded_ids
    if orphans:
        store.delete_documents(sorted(orphans))
        report.deleted = len(orphans)
        report.deleted_ids = sorted(orphans)
        report.chunks_deleted = sum(in_store[d] for d in orphans)

    report.bm25_rebuilt = refresh_bm25(
        store, bm25_path, force=rebuild_bm25 or bool(todo or orphans)
    )
    report.seconds += time.perf_counter() - started
    return report
