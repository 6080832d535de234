"""The deterministic parts of the benchmarks: synthetic data, the lookup embedder, the
knowledge-base copy ingest_speed times, the model part's timings on a fake model and a fake
stream, the table rows, and the statistics helpers."""

import json
import math
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from app.config import ChunkingSettings, RetrievalSettings, Settings
from app.llm.base import ChatMessage
from app.retrieval.bm25 import BM25Index
from app.retrieval.hybrid import HybridRetriever
from app.retrieval.store import MemoryStore
from app.text import STOPWORDS
from eval.bench import ingest_speed, model, retrieval_scale
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


# --- model: first token and first sentence, on a fake clock ---------------------------------


class Clock:
    """A `time` stand-in for eval.bench.model: seconds pass only when a fake says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def perf_counter(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    monkeypatch.setattr(model, "time", fake)
    return fake


# One second per piece; the first sentence is cut when " Refunds" follows its marker.
PIECES = ["Returns", " take 30 days.", " [1]", " Refunds", " follow."]


class FakeLlama:
    def __init__(self, clock: Clock, pieces: list[str]) -> None:
        self.clock, self.pieces = clock, pieces

    def create_chat_completion(self, *_: Any, **__: Any) -> Iterator[dict[str, Any]]:
        yield {"choices": [{"delta": {"role": "assistant"}}]}  # no text: not a first token
        for piece in self.pieces:
            self.clock.now += 1.0
            yield {"choices": [{"delta": {"content": piece}}]}
        self.clock.now += 0.5


def _bare_llm(clock: Clock, pieces: list[str] = PIECES) -> Any:
    return SimpleNamespace(lock=threading.Lock(), llama=FakeLlama(clock, pieces))


def _call() -> Any:
    return model._Call([ChatMessage("user", "How long do returns take?")], max_tokens=32)


def test_bare_times_its_first_token_and_its_first_sentence(clock: Clock) -> None:
    timing = model.bare(_bare_llm(clock), Settings(), _call())
    assert timing.text == "".join(PIECES)
    assert timing.first_s == timing.model_first_s == 1.0
    assert timing.sentence_s == 4.0  # the pipeline's SentenceSplitter rule, not the "."
    assert timing.total_s == 5.5


def test_bare_single_sentence_ends_with_its_text(clock: Clock) -> None:
    timing = model.bare(_bare_llm(clock, ["Yes", ", 30 days. [1]"]), Settings(), _call())
    assert (timing.first_s, timing.sentence_s, timing.total_s) == (1.0, 2.5, 2.5)


def _sse(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
    lines = []
    for name, data in events:
        lines += [f"event: {name}", "data: " + json.dumps(data), ""]
    return lines


class FakeClient:
    """`client.stream(...)` of a TestClient: lines of SSE, `step` seconds apart; on entry
    the app's model call is recorded, its first piece `model_after` seconds in."""

    def __init__(
        self, clock: Clock, lines: list[str], step: float, rec: Any = None, model_after: float = 0
    ) -> None:
        self.clock, self.lines, self.step = clock, lines, step
        self.rec, self.model_after = rec, model_after

    @contextmanager
    def stream(self, *_: Any, **__: Any) -> Iterator[Any]:
        if self.rec is not None:
            call = _call()
            call.first_at = self.clock.now + self.model_after
            self.rec.calls.append(call)

        def iter_lines() -> Iterator[str]:
            for line in self.lines:
                self.clock.now += self.step
                yield line

        yield SimpleNamespace(raise_for_status=lambda: None, iter_lines=iter_lines)


DONE = {
    "answer": "Returns take 30 days. [1] Refunds follow.",
    "outcome": "generated",
    "timings_ms": {"first_token_ms": 1200.0, "first_sentence_ms": 3000.0, "total_ms": 5000.0},
}
STREAM = _sse(
    [
        ("meta", {"session_id": "s", "message_id": "m"}),
        ("token", {"text": "Returns take 30 days. [1]"}),
        ("token", {"text": " Refunds follow."}),
        ("done", DONE),
    ]
)


def test_shopdesk_times_the_first_checked_sentence_and_the_models_first_token(
    clock: Clock,
) -> None:
    rec = model.Recorder(inner=None)  # type: ignore[arg-type]
    rec.calls.append(_call())  # a call of an earlier turn: cleared before this one
    client = FakeClient(clock, STREAM, step=1.0, rec=rec, model_after=2.5)
    timing, done = model.shopdesk(client, "How long do returns take?", rec)  # type: ignore[arg-type]
    assert done == DONE
    assert timing.text == DONE["answer"]
    assert timing.first_s == timing.sentence_s == 5.0  # the first token event's data line
    assert timing.model_first_s == 2.5  # the recorder's clock, the client's
    assert timing.total_s == 12.0
    assert timing.server_ms["first_sentence_ms"] == 3000.0
    assert len(rec.calls) == 1


def test_shopdesk_without_a_recorder_takes_the_servers_interval(clock: Clock) -> None:
    timing, _ = model.shopdesk(FakeClient(clock, STREAM, step=1.0), "q")  # type: ignore[arg-type]
    assert timing.sentence_s == 5.0
    assert timing.model_first_s == pytest.approx(5.0 - 1.8)  # first_sentence - first_token


def _timing(first: float, model_first: float, sentence: float, total: float) -> Any:
    server = {"first_token_ms": model_first * 500, "first_sentence_ms": sentence * 500}
    return model.Timing(first, total, "t", model_first, sentence, server)


def _items() -> list[dict[str, Any]]:
    def item(scale: float) -> dict[str, Any]:
        return {
            "ours": [_timing(6 * scale, 2 * scale, 6 * scale, 10 * scale)] * 2,
            "bare": [_timing(2 * scale, 2 * scale, 5 * scale, 10 * scale)] * 2,
            "same_text": True,
            "prompt_tokens": 900,
            "cached_tokens": 100,
            "output_tokens": 40,
        }

    return [item(1.0), item(2.0)]


def test_summary_puts_the_first_checked_sentence_beside_the_first_token() -> None:
    g = model._summarise(_items())
    assert g["questions"] == 2
    assert g["runs_per_side"] == 4
    assert g["ours_first_token"]["p50_ms"] == 3000.0  # the model's, not the first event
    assert g["first_token_ratio"] == 1.0
    assert g["ours_first_sentence"]["p50_ms"] == 9000.0
    assert g["ours_first_token_to_sentence"]["p50_ms"] == 6000.0
    assert g["bare_first_sentence"]["p50_ms"] == 7500.0
    assert g["bare_first_sentence_generation"]["p50_ms"] == 4500.0
    assert g["first_sentence_ratio"] == 1.2  # 6 / (2 + 3): the target's edge
    assert g["first_sentence_ratio_median_per_question"] == 1.2
    assert g["first_sentence_target"] == model.FIRST_SENTENCE_TARGET
    assert g["server_first_token"]["p50_ms"] == 1500.0
    assert g["server_first_sentence"]["p50_ms"] == 4500.0
    assert g["overhead"] == 0.0
    assert g["overhead_median_per_question"] == 0.0


def test_summary_of_no_questions() -> None:
    g = model._summarise([])
    assert g["questions"] == 0
    assert g["first_sentence_ratio_median_per_question"] is None
    assert math.isnan(g["first_sentence_ratio"])


def test_model_rows_show_both_first_times() -> None:
    faq = {
        "cold": {"p50_ms": 110.0, "p95_ms": 130.0},
        "repeat": {"p50_ms": 20.0},
        "query_embedding": {"p50_ms": 90.0},
        "vs_generated_p50": 0.01,
    }
    table = model.rows({"generated": model._summarise(_items()), "faq": faq})
    assert [len(r) for r in table] == [3] * 5
    first_token, first_sentence = table[1], table[2]
    assert first_token[1] == "3000 / 3000 ms p50"
    assert first_sentence[1] == "9000 / 7500 ms p50"
    assert "ratio 1.200 (target <= 1.20)" in first_sentence[2]
    assert "4500 ms of sentence" in first_sentence[2]
    assert "6000 ms after the model's first token" in first_sentence[2]


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
