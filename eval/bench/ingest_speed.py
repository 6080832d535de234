"""Ingest speed: ShopDesk's ingest against the bare embedding call, and an unchanged re-ingest.

`throughput` measures, in one process with one embedder instance, on the same chunk
texts:

- raw: `SentenceTransformer.encode` of exactly the texts ingest embeds
  (`ingest.pipeline.embed_input`), with the embedder's document prompt, batch size and
  normalisation, in one call: the floor any ingest pays for the embedding model;
- ingest: the full `ingest.pipeline.ingest` of those documents into a fresh chroma store
  and BM25 file in a temporary folder: loading, chunking, embedding in flushes of 64
  chunks, upserts, the BM25 rebuild.

The model is warmed up once (one small encode), then raw runs first and ingest second,
`rounds` times (default once); the best round of each side counts. Wall and process
CPU seconds are both kept: CPU seconds show when another process took the cores. The
ratio ingest/raw of chunks per second says what ShopDesk's own work costs on top of the
model; 1.0 would be free.

The documents are those of the first `max_chunks` chunks (whole documents), written
to a temporary knowledge base as one JSONL file that the loaders read back into the
same documents; the texts raw encodes are taken from that copy, and the run fails if
they differ from the originals' (`same_texts`).

`reingest` times an ingest of a knowledge base that the data directory already holds
unchanged: the cost of running `make ingest` again when nothing changed (a scan of the
store, loading and hashing every file, the BM25 fingerprint check).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from app.config import ChunkingSettings, Settings
from app.container import build_embedder, build_store
from app.domain import Chunk, Document
from app.embeddings import Embedder, SentenceTransformerEmbedder
from app.retrieval.store import VectorStore
from eval.bench.stats import Stopwatch, ratio
from ingest.chunking import chunk_document, stored_hash
from ingest.pipeline import IngestReport, embed_input, ingest, load_documents, stored_documents

KB_FILE = "bench.jsonl"
SKIP_NOT_INGESTED = "not ingested: run make eval-shared first"


# --- choosing and copying the documents ----------------------------------------------------


def load_kb(kb: Sequence[Path]) -> list[Document]:
    """The documents ingest would load from `kb` (the real loaders); fails on a bad file."""
    report = IngestReport()
    docs = load_documents(list(kb), report)
    if report.failures:
        first = report.failures[0]
        raise ValueError(f"{len(report.failures)} file(s) failed to load, e.g. {first.path}")
    return docs


def select_documents(
    docs: Sequence[Document], chunking: ChunkingSettings, max_chunks: int
) -> list[Document]:
    """The documents that hold the first `max_chunks` chunks, in load order."""
    chosen: list[Document] = []
    chunks = 0
    for doc in docs:
        if chunks >= max_chunks:
            break
        chosen.append(doc)
        chunks += len(chunk_document(doc, chunking))
    return chosen


def document_row(doc: Document) -> dict[str, Any]:
    """A JSONL row that the loaders read back into the same document."""
    row: dict[str, Any] = {
        "id": doc.id,
        "title": doc.title,
        "source": doc.source,
        "kind": doc.kind,
        "lang": doc.lang,
        "meta": dict(doc.metadata),
    }
    if doc.question:
        row.update(question=doc.question, answer=doc.text)
    else:
        row["text"] = doc.text
    return row


def write_kb(docs: Sequence[Document], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / KB_FILE
    lines = (json.dumps(document_row(d), ensure_ascii=False) for d in docs)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def embed_texts(docs: Sequence[Document], chunking: ChunkingSettings) -> list[tuple[str, str]]:
    """(chunk id, what the embedder sees) for every chunk, in ingest's order."""
    chunks: list[Chunk] = [c for d in docs for c in chunk_document(d, chunking)]
    return [(c.id, embed_input(c)) for c in chunks]


# --- timing --------------------------------------------------------------------------------


class _Clock:
    """Wall seconds and this process's CPU seconds (all threads) of a `with` block.

    CPU seconds barely move when another process shares the cores; wall seconds do,
    so a large gap between the two sides' CPU/wall shares flags a disturbed run.
    """

    def __init__(self) -> None:
        self.wall_s = 0.0
        self.cpu_s = 0.0

    def __enter__(self) -> _Clock:
        self._wall0, self._cpu0 = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self._wall0
        self.cpu_s = time.process_time() - self._cpu0


def raw_encode(embedder: SentenceTransformerEmbedder, texts: Sequence[str], batch: int) -> _Clock:
    """The bare library call on `texts`, made as the embedder makes it, timed."""
    model = embedder._model
    prompt = "document" if "document" in (model.prompts or {}) else None
    with _Clock() as clock:
        model.encode(
            list(texts),
            prompt_name=prompt,
            batch_size=batch,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
    return clock


def ingest_into(settings: Settings, kb: Path, embedder: Embedder) -> tuple[IngestReport, _Clock]:
    """A full ingest of `kb` into the (fresh) data directory of `settings`, timed."""
    store = build_store(settings)
    with _Clock() as clock:
        report = ingest(
            [kb],
            embedder=embedder,
            store=store,
            chunking=settings.chunking,
            bm25_path=settings.bm25_path,
        )
    return report, clock


def _per_s(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds else float("nan")


def _side(clocks: Sequence[_Clock], chunks: int) -> dict[str, Any]:
    best = min(clocks, key=lambda c: c.wall_s)
    return {
        "s": round(best.wall_s, 2),
        "cpu_s": round(best.cpu_s, 2),
        "chunks_per_s": _per_s(chunks, best.wall_s),
        "rounds_s": [round(c.wall_s, 2) for c in clocks],
    }


def _rounds(
    settings: Settings,
    embedder: SentenceTransformerEmbedder,
    kb: Path,
    texts: list[str],
    rounds: int,
    folder: Path,
) -> tuple[list[_Clock], list[_Clock], int]:
    """`rounds` x (raw, then ingest into a fresh data directory)."""
    raw: list[_Clock] = []
    full: list[_Clock] = []
    written = 0
    for n in range(rounds):
        raw.append(raw_encode(embedder, texts, settings.embedding.batch_size))
        local = settings.model_copy(update={"data_dir": folder / f"data-{n}"})
        report, clock = ingest_into(local, kb, embedder)
        full.append(clock)
        written = report.chunks_written
    return raw, full, written


def throughput(
    settings: Settings,
    kb: Sequence[Path],
    *,
    max_chunks: int = 400,
    work_dir: Path | None = None,
    embedder: Embedder | None = None,
    rounds: int = 1,
) -> dict[str, Any]:
    """Chunks per second of the bare encode and of the full ingest (module docstring).

    `embedder` (built from `settings` when None) lets a caller share one loaded model.
    Each of `rounds` runs raw then ingest; the best round of each side is reported.
    """
    embedder = embedder if embedder is not None else build_embedder(settings)
    if not isinstance(embedder, SentenceTransformerEmbedder):
        return {"skipped": f"raw baseline needs sentence-transformers, not {type(embedder)}"}
    source = select_documents(load_kb(kb), settings.chunking, max_chunks)
    folder = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=work_dir))
    try:
        copy_kb = write_kb(source, folder / "kb")
        texts = embed_texts(load_kb([copy_kb]), settings.chunking)
        if texts != embed_texts(source, settings.chunking):
            raise RuntimeError("the temporary knowledge base does not give the same chunk texts")
        embedder.embed_documents(["warm up"])
        raw, full, written = _rounds(
            settings, embedder, copy_kb, [t for _, t in texts], max(1, rounds), folder
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    raw_side, ingest_side = _side(raw, len(texts)), _side(full, len(texts))
    return {
        "documents": len(source),
        "chunks": len(texts),
        "chunks_written": written,
        "same_texts": True,
        "batch_size": settings.embedding.batch_size,
        "order": "warm-up, then per round: raw, ingest",
        "raw": raw_side,
        "ingest": ingest_side,
        "ingest_over_raw": ratio(ingest_side["chunks_per_s"], raw_side["chunks_per_s"]),
        "overhead_s": round(ingest_side["s"] - raw_side["s"], 2),
    }


# --- unchanged re-ingest -------------------------------------------------------------------


def pending_documents(kb: Sequence[Path], store: VectorStore, chunking: ChunkingSettings) -> int:
    """How many documents under `kb` an ingest would (re-)embed into `store`."""
    stored, _ = stored_documents(store.scan())
    docs = load_kb(kb)
    return sum(1 for d in docs if stored.get(d.id) != stored_hash(d, chunking))


def reingest(
    settings: Settings,
    kb: Sequence[Path],
    data_dir: Path,
    *,
    embedder: Embedder | None = None,
) -> dict[str, Any]:
    """Time `ingest` of `kb` into `data_dir`, which already holds it unchanged.

    Nothing is ingested when `data_dir` has no store, or when some document differs
    from the store (that would re-embed it: not the unchanged case this measures).
    `embedder` spares loading the model a second time; it is not called when nothing
    changed.
    """
    local = settings.model_copy(update={"data_dir": data_dir})
    if local.store.backend != "chroma" or not local.chroma_dir.is_dir():
        return {"skipped": SKIP_NOT_INGESTED}
    store = build_store(local)
    if store.count() == 0:
        return {"skipped": SKIP_NOT_INGESTED}
    pending = pending_documents(kb, store, local.chunking)
    if pending:
        return {"skipped": f"{pending} document(s) differ from the store: not unchanged"}
    embedder = embedder if embedder is not None else build_embedder(local)
    with Stopwatch() as sw:
        report = ingest(
            list(kb),
            embedder=embedder,
            store=store,
            chunking=local.chunking,
            bm25_path=local.bm25_path,
        )
    return {
        "seconds": round(sw.seconds, 2),
        "documents": report.documents,
        "unchanged": report.unchanged,
        "chunks_written": report.chunks_written,
        "deleted": report.deleted,
        "bm25_rebuilt": report.bm25_rebuilt,
        "failures": len(report.failures),
        "chunks_in_store": store.count(),
    }


# --- tables --------------------------------------------------------------------------------


def rows(
    throughput_result: Mapping[str, Any], reingest_result: Mapping[str, Any]
) -> list[list[str]]:
    """[measure, value, notes] rows for the bench table."""
    return [_throughput_row(throughput_result), _reingest_row(reingest_result)]


def _throughput_row(r: Mapping[str, Any]) -> list[str]:
    measure = "ingest vs bare encode"
    if "skipped" in r:
        return [measure, "skipped", str(r["skipped"])]
    return [
        measure,
        f"{r['ingest']['chunks_per_s']:.1f} / {r['raw']['chunks_per_s']:.1f} chunks/s",
        f"ratio {r['ingest_over_raw']:.2f}; {r['chunks']} chunks of {r['documents']} documents, "
        f"overhead {r['overhead_s']:.1f} s",
    ]


def _reingest_row(r: Mapping[str, Any]) -> list[str]:
    measure = "unchanged re-ingest"
    if "skipped" in r:
        return [measure, "skipped", str(r["skipped"])]
    return [
        measure,
        f"{r['seconds']:.1f} s",
        f"{r['documents']} documents, {r['unchanged']} unchanged, "
        f"{r['chunks_written']} chunks written",
    ]


def report(throughput_result: Mapping[str, Any], reingest_result: Mapping[str, Any]) -> None:
    for row in rows(throughput_result, reingest_result):
        print(" | ".join(row))


def main(argv: Sequence[str] | None = None) -> None:
    from app.config import load_settings

    parser = argparse.ArgumentParser(description="Ingest throughput and unchanged re-ingest.")
    parser.add_argument("--kb", type=Path, nargs="+", default=[Path("data/sample_shop/kb")])
    parser.add_argument("--max-chunks", type=int, default=400)
    parser.add_argument("--reingest-kb", type=Path, nargs="+", default=[Path("../shared/data/kb")])
    parser.add_argument("--data-dir", type=Path, default=Path("var/eval-shared"))
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    settings = load_settings()
    embedder = build_embedder(settings)
    fast = throughput(settings, args.kb, max_chunks=args.max_chunks, embedder=embedder)
    again = reingest(settings, args.reingest_kb, args.data_dir, embedder=embedder)
    report(fast, again)
    if args.json:
        payload = {"throughput": fast, "reingest": again}
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
