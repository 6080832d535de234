"""The deterministic parts of the benchmarks: synthetic data, the lookup embedder, the
knowledge-base copy ingest_speed times, the table rows, and the statistics helpers."""

import math
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from app.config import ChunkingSettings, RetrievalSettings
from app.retrieval.bm25 import BM25Index
from app.retrieval.hybrid import HybridRetriever
from app.retrieval.store import MemoryStore
from app.text import STOPWORDS
from eval.bench import ingest_speed, retrieval_scale
from eval.bench.retrieval_scale import (
    LookupEmbedder,
    english_vocabulary,
    synthetic_corpus,
    synthetic_queries,
    zipf_weights,
)
from eval.bench.stats import Stopwatch, percentile, ratio, summary_ms

pytestmark = pytest.mark.unit

META_KEYS = {"doc_id", "title", "source", "kind", "lang", "content_hash", "n_chunks"}


# --- synthetic corpus ----------------------------------------------------------------------


def test_corpus_is_deterministic_for_a_seed() -> None:
    a = synthetic_corpus(120, dim=16, seed=3)
    b = synthetic_corpus(120, dim=16, seed=3)
    assert a.chunks == b.chunks
    assert np.array_equal(a.vectors, b.vectors)
    other = synthetic_corpus(120, dim=16, seed=4)
    assert other.chunks != a.chunks


def test_corpus_has_the_requested_size_dim_and_unit_vectors() -> None:
    corpus = synthetic_corpus(57, dim=24, seed=0)
    assert len(corpus.chunks) == 57
    assert corpus.vectors.shape == (57, 24)
    assert corpus.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(corpus.vectors, axis=1), 1.0, atol=1e-5)
    assert len({c.id for c in corpus.chunks}) == 57


def test_corpus_metadata_is_the_stores() -> None:
    corpus = synthetic_corpus(300, dim=8, seed=1)
    per_doc = Counter(c.doc_id for c in corpus.chunks)
    for chunk in corpus.chunks:
        assert set(chunk.metadata) >= META_KEYS
        assert chunk.metadata["doc_id"] == chunk.doc_id
        assert chunk.metadata["lang"] in ("en", "zh")
        assert chunk.metadata["kind"] in ("policy", "product", "faq")
        assert chunk.metadata["n_chunks"] == per_doc[chunk.doc_id]
        assert chunk.id == f"{chunk.doc_id}#{chunk.metadata['chunk_index']}"
    assert {c.metadata["lang"] for c in corpus.chunks} == {"en", "zh"}
    assert {c.metadata["kind"] for c in corpus.chunks} == {"policy", "product", "faq"}


def test_chinese_chunks_hold_chinese_words() -> None:
    corpus = synthetic_corpus(200, dim=8, seed=2)
    zh = [c for c in corpus.chunks if c.metadata["lang"] == "zh"]
    assert zh
    assert all(any(w in c.text for w in retrieval_scale.ZH_WORDS_TEXT.split()) for c in zh)


def test_vocabulary_is_distinct_and_has_no_stopwords() -> None:
    words = english_vocabulary(np.random.default_rng(0), 500)
    assert len(words) == len(set(words)) == 500
    assert not set(words) & STOPWORDS
    assert all(w.isascii() and w.isalpha() and len(w) >= 3 for w in words)


def test_zipf_weights_sum_to_one_and_fall() -> None:
    w = zipf_weights(100)
    assert math.isclose(float(w.sum()), 1.0)
    assert np.all(np.diff(w) < 0)


def test_queries_are_distinct_deterministic_and_partly_filtered() -> None:
    corpus = synthetic_corpus(200, dim=16, seed=0)
    queries = synthetic_queries(corpus, 40, seed=0)
    again = synthetic_queries(corpus, 40, seed=0)
    assert [q.text for q in queries] == [q.text for q in again]
    assert len({q.text for q in queries}) == 40
    filtered = [q for q in queries if q.filters]
    assert 0 < len(filtered) < len(queries)
    assert all(set(q.filters or {}) <= {"lang", "kind"} for q in filtered)
    assert all(math.isclose(float(np.linalg.norm(q.vector)), 1.0, rel_tol=1e-5) for q in queries)


# --- the lookup embedder -------------------------------------------------------------------


def test_lookup_embedder_returns_the_precomputed_vector() -> None:
    a = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    b = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    embedder = LookupEmbedder({"alpha": a, "beta": b}, 3)
    assert embedder.dim == 3
    assert np.array_equal(embedder.embed_query("beta"), b)
    assert np.array_equal(embedder.embed_documents(["alpha", "beta"]), np.stack([a, b]))
    assert embedder.embed_documents([]).shape == (0, 3)
    with pytest.raises(KeyError):
        embedder.embed_query("gamma")


def test_lookup_embedder_drives_the_real_retriever() -> None:
    corpus = synthetic_corpus(60, dim=16, seed=0)
    store = MemoryStore()
    store.upsert(corpus.chunks, corpus.vectors)
    target = corpus.chunks[7]
    embedder = LookupEmbedder({"probe": corpus.vectors[7]}, 16)
    index = BM25Index.build(corpus.chunks)
    retriever = HybridRetriever(embedder, store, lambda: index, RetrievalSettings())
    found = retriever.retrieve("probe", mode="dense")
    assert found.passages[0].chunk.id == target.id


# --- ingest_speed: the knowledge-base copy -------------------------------------------------


def test_copied_kb_gives_the_same_chunk_texts(tmp_path: Path, shop_dir: Path) -> None:
    chunking = ChunkingSettings()
    docs = ingest_speed.load_kb([shop_dir])
    copy = ingest_speed.write_kb(docs, tmp_path / "kb")
    again = ingest_speed.load_kb([copy])
    assert [d.id for d in again] == [d.id for d in docs]
    assert ingest_speed.embed_texts(again, chunking) == ingest_speed.embed_texts(docs, chunking)


def test_selection_takes_whole_documents_up_to_the_chunk_budget(shop_dir: Path) -> None:
    chunking = ChunkingSettings()
    docs = ingest_speed.load_kb([shop_dir])
    chosen = ingest_speed.select_documents(docs, chunking, 3)
    assert chosen == docs[: len(chosen)]
    n_chunks = len(ingest_speed.embed_texts(chosen, chunking))
    assert n_chunks >= 3
    assert len(ingest_speed.embed_texts(chosen[:-1], chunking)) < 3
    assert ingest_speed.select_documents(docs, chunking, 0) == []


def test_reingest_skips_a_data_dir_without_a_store(tmp_path: Path) -> None:
    from app.config import Settings

    result = ingest_speed.reingest(Settings(), [tmp_path], tmp_path / "empty")
    assert result == {"skipped": ingest_speed.SKIP_NOT_INGESTED}
    assert not (tmp_path / "empty").exists()


# --- table rows ----------------------------------------------------------------------------


def _size(p50: float) -> dict[str, object]:
    s = {"n": 3.0, "p50_ms": p50, "p95_ms": p50 * 2, "mean_ms": p50}
    return {
        "build_s": 1.0,
        "hybrid": s,
        "dense": s,
        "hybrid_filtered": s,
        "dense_filtered": s,
        "hybrid_total_p50_ms": p50 + 40,
    }


def test_rows_are_three_columns() -> None:
    scale = retrieval_scale.rows({"sizes": {"1000": _size(5.0), "10000": _size(9.0)}})
    assert [len(r) for r in scale] == [3, 3]
    assert "1,000" in scale[0][0]
    assert scale[1][1] == "9.0 / 9.0 ms p50"
    side = {"s": 2.0, "cpu_s": 4.0, "chunks_per_s": 5.0, "rounds_s": [2.0]}
    fast = {
        "chunks": 10,
        "documents": 8,
        "raw": side,
        "ingest": side,
        "ingest_over_raw": 1.0,
        "overhead_s": 0.0,
    }
    again = {"seconds": 0.5, "documents": 8, "unchanged": 8, "chunks_written": 0}
    table = ingest_speed.rows(fast, again)
    assert [len(r) for r in table] == [3, 3]
    assert ingest_speed.rows({"skipped": "why"}, {"skipped": "why"})[1][1] == "skipped"


# --- stats ---------------------------------------------------------------------------------


def test_percentile_interpolates_and_handles_no_values() -> None:
    assert percentile([], 50) == 0.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile([0.0, 10.0], 95) == pytest.approx(9.5)
    assert percentile([7.0], 95) == 7.0


def test_summary_is_in_milliseconds() -> None:
    s = summary_ms([0.001, 0.002, 0.003])
    assert s == {"n": 3.0, "p50_ms": 2.0, "p95_ms": 2.9, "mean_ms": 2.0}
    assert summary_ms([])["n"] == 0.0


def test_ratio_and_stopwatch() -> None:
    assert ratio(1.0, 4.0) == 0.25
    assert math.isnan(ratio(1.0, 0.0))
    with Stopwatch() as sw:
        time.sleep(0.01)
    assert 0.005 < sw.seconds < 1.0
