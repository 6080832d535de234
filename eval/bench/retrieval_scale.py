"""Retrieval latency against corpus size: hybrid vs dense only, at 1k, 10k and 100k chunks.

What is measured: the time `HybridRetriever.retrieve` spends in the indexes (chroma's
HNSW query, BM25 scoring, fusion, and fetching the passages only BM25 found) on a real
`ChromaStore` and a real `BM25Index` filled with a synthetic corpus, with the default
`RetrievalSettings()`. Also the time to build both indexes.

Why: a shop's knowledge base grows from a few hundred chunks to a catalogue of many
thousands; this is the curve that says where the indexes stop being free next to the
query embedding and the language model.

How, and what it is not:

- The corpus is synthetic and seeded: bilingual-ish text (Zipf-distributed draws from a
  few thousand English-like words and a list of Chinese shop words, 80-150 words a
  chunk, 40 % of documents Chinese), the store's metadata, and random unit vectors of
  the embedder's dimension. Random vectors give the scale curve, not retrieval quality
  (HNSW on structureless vectors is, if anything, a slow case).
- Each query targets one chunk: 3-8 of its words, and a vector near the chunk's.
- The query embedding is left out: a `LookupEmbedder` returns precomputed vectors, so
  the figure is index latency only. The caller may pass the real embedder's measured
  query p50 (`embed_ms_p50`) to get `hybrid_total_p50_ms`.
- A quarter of the queries carry a metadata filter (`lang` or `kind` of their target);
  they are reported separately (`*_filtered`), the plain figures are unfiltered only.
- Hybrid and dense run on the same query one after the other, alternating which goes
  first, after a few warm-up queries per mode.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.config import RetrievalSettings, StoreSettings
from app.domain import Chunk, Filters, Kind, Lang, Metadata, chunk_id
from app.embeddings import Vectors
from app.retrieval.bm25 import BM25Index
from app.retrieval.hybrid import HybridRetriever, Mode
from app.retrieval.store import ChromaStore
from app.text import STOPWORDS, words
from eval.bench.stats import Stopwatch, percentile, summary_ms

Rng = np.random.Generator

EN_VOCABULARY = 3000
ZH_SHARE = 0.4
"""Share of documents in Chinese (the shared data has about 42 %)."""
FILTERED_EVERY = 4
"""Every n-th query carries a metadata filter."""
WARMUP = 5
UPSERT_BATCH = 2048
MODES: tuple[Mode, Mode] = ("hybrid", "dense")
_KINDS: tuple[Kind, ...] = ("policy", "product", "faq")
_KIND_P = (0.3, 0.5, 0.2)

_ONSET_TEXT = "b c d f g h l m n p r s t v w br ch cl cr dr fl gr pl pr sh sl st str tr"
_ONSETS = tuple(_ONSET_TEXT.split())
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ee", "ou", "oo")
_CODAS = ("", "", "n", "r", "s", "t", "l", "m", "nd", "st", "ng", "ck", "rt")
ZH_WORDS_TEXT = (
    "退货 退款 换货 运费 包邮 快递 物流 发货 签收 订单 付款 支付 发票 优惠 折扣 优惠券 会员 "
    "积分 客服 售后 保修 维修 质量 问题 商品 产品 价格 库存 缺货 尺码 颜色 型号 规格 材质 "
    "包装 说明书 充电 电池 耳机 音箱 手机 配件 台灯 茶叶 厨房 背包 跑鞋 智能 家电 安装 "
    "消费者 经营者 权益 合同 责任 赔偿 损失 法律 规定 条款 个人信息 隐私 保护 同意 授权 "
    "账户 密码 登录 注册 地址 电话 邮箱 取消 修改 查询 跟踪 预计 时间 天内 工作日 无理由 "
    "七日 三十天 原价 差价 退回 寄回 检测 损坏 破损 丢失 补发 投诉 处理 申请 审核 通过 拒绝"
)
"""Chinese shop and consumer-law words, space-separated."""


@dataclass(frozen=True)
class SyntheticCorpus:
    chunks: list[Chunk]
    vectors: Vectors
    """One L2-normalised row per chunk, in the order of `chunks`."""


@dataclass(frozen=True)
class BenchQuery:
    text: str
    vector: Vectors
    filters: Filters | None


class LookupEmbedder:
    """An `Embedder` that returns precomputed vectors, looked up by text (no model)."""

    def __init__(self, table: Mapping[str, Vectors], dim: int) -> None:
        self._table = dict(table)
        self._dim = dim

    @property
    def dim(self) -> int:
        return self._dim

    def embed_documents(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self._dim), dtype=np.float32)
        return np.stack([self._table[t] for t in texts])

    def embed_query(self, text: str) -> Vectors:
        return self._table[text]


# --- the synthetic corpus ------------------------------------------------------------------


def unit_vectors(rng: Rng, n: int, dim: int) -> Vectors:
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def english_vocabulary(rng: Rng, size: int = EN_VOCABULARY) -> list[str]:
    """`size` distinct pronounceable lower-case words (no stopwords), in a seeded order."""
    found: dict[str, None] = {}
    while len(found) < size:
        syllables = int(rng.choice(3, p=(0.3, 0.5, 0.2))) + 1
        word = "".join(
            _ONSETS[rng.integers(len(_ONSETS))]
            + _VOWELS[rng.integers(len(_VOWELS))]
            + _CODAS[rng.integers(len(_CODAS))]
            for _ in range(syllables)
        )
        if len(word) >= 3 and word not in STOPWORDS:
            found[word] = None
    return list(found)


def zipf_weights(n: int, exponent: float = 1.0, shift: float = 2.7) -> npt.NDArray[np.float64]:
    """Zipf-Mandelbrot word frequencies: a few common words, a long tail of rare ones."""
    weights: npt.NDArray[np.float64] = 1.0 / (np.arange(n, dtype=np.float64) + shift) ** exponent
    return np.asarray(weights / weights.sum(), dtype=np.float64)


class _Writer:
    """Draws chunk texts: mostly words of the chunk's language, some of the other."""

    def __init__(self, rng: Rng) -> None:
        self._rng = rng
        self._en = english_vocabulary(rng)
        self._zh = ZH_WORDS_TEXT.split()
        self._en_p = zipf_weights(len(self._en))
        self._zh_p = zipf_weights(len(self._zh))

    def _draw(self, lang: Lang, n: int) -> list[str]:
        if lang == "en":
            return [self._en[i] for i in self._rng.choice(len(self._en), n, p=self._en_p)]
        return [self._zh[i] for i in self._rng.choice(len(self._zh), n, p=self._zh_p)]

    def text(self, lang: Lang, n_words: int) -> str:
        other: Lang = "zh" if lang == "en" else "en"
        share = 0.05 if lang == "en" else 0.25
        foreign = self._rng.random(n_words) < share
        native = iter(self._draw(lang, n_words))
        extra = iter(self._draw(other, n_words))
        tokens = [next(extra) if f else next(native) for f in foreign]
        return _join(tokens, lang)

    def title(self, lang: Lang) -> str:
        return _join(self._draw(lang, int(self._rng.integers(2, 6))), lang)


def _is_zh(token: str) -> bool:
    return not token[-1].isascii()


def _spaced(tokens: Sequence[str]) -> str:
    """Words joined by spaces, except between two Chinese words."""
    out: list[str] = []
    for token in tokens:
        if out and not (_is_zh(token) and _is_zh(out[-1])):
            out.append(" ")
        out.append(token)
    return "".join(out)


def _join(tokens: list[str], lang: Lang) -> str:
    """Words into sentences of twelve, ended the way the chunk's language ends them."""
    end = "。" if lang == "zh" else "."
    sentences = [_spaced(tokens[i : i + 12]) for i in range(0, len(tokens), 12)]
    return (end if lang == "zh" else ". ").join(sentences) + end


def _document_plan(rng: Rng) -> tuple[Kind, Lang, int]:
    kind = _KINDS[int(rng.choice(len(_KINDS), p=_KIND_P))]
    lang: Lang = "zh" if rng.random() < ZH_SHARE else "en"
    parts = int(rng.integers(1, 7)) if kind == "policy" else 1
    return kind, lang, parts


def _document_chunks(writer: _Writer, rng: Rng, number: int, size: int) -> list[Chunk]:
    """One document's chunks (at most `size`), with the metadata ingest gives them."""
    kind, lang, parts = _document_plan(rng)
    parts = min(parts, size)
    doc_id = f"{kind}-{lang}-{number:06d}"
    folder, suffix = ("policies", "md") if kind == "policy" else (kind, "jsonl")
    base: Metadata = {
        "doc_id": doc_id,
        "title": writer.title(lang),
        "source": f"{folder}/{doc_id}.{suffix}",
        "kind": kind,
        "lang": lang,
        "content_hash": f"{int(rng.integers(2**62)):016x}",
        "n_chunks": parts,
    }
    return [
        Chunk(
            id=chunk_id(doc_id, n),
            doc_id=doc_id,
            text=writer.text(lang, int(rng.integers(80, 151))),
            metadata={**base, "chunk_index": n, "heading": ""},
        )
        for n in range(parts)
    ]


def synthetic_corpus(size: int, *, dim: int = 768, seed: int = 0) -> SyntheticCorpus:
    """`size` chunks in whole documents (the last one cut short), with unit vectors."""
    rng = np.random.default_rng(seed)
    writer = _Writer(rng)
    chunks: list[Chunk] = []
    while len(chunks) < size:
        chunks.extend(_document_chunks(writer, rng, len(chunks), size - len(chunks)))
    return SyntheticCorpus(chunks, unit_vectors(rng, size, dim))


def synthetic_queries(corpus: SyntheticCorpus, n: int, *, seed: int = 0) -> list[BenchQuery]:
    """`n` distinct queries, each 3-8 words of one chunk and a vector near that chunk's."""
    rng = np.random.default_rng([seed, 1])
    dim = corpus.vectors.shape[1]
    queries: dict[str, BenchQuery] = {}
    while len(queries) < n:
        target = int(rng.integers(len(corpus.chunks)))
        chunk = corpus.chunks[target]
        tokens = words(chunk.text)
        picked = rng.choice(len(tokens), min(len(tokens), int(rng.integers(3, 9))), replace=False)
        text = _spaced([tokens[i] for i in sorted(picked)])
        vector = corpus.vectors[target] + unit_vectors(rng, 1, dim)[0]
        vector /= np.linalg.norm(vector)
        filters = _filter_for(chunk, len(queries)) if len(queries) % FILTERED_EVERY == 0 else None
        queries.setdefault(text, BenchQuery(text, vector.astype(np.float32), filters))
    return list(queries.values())


def _filter_for(chunk: Chunk, number: int) -> Filters:
    key = "lang" if (number // FILTERED_EVERY) % 2 == 0 else "kind"
    return {key: chunk.metadata[key]}


# --- building and timing -------------------------------------------------------------------


@dataclass
class _Indexes:
    store: ChromaStore
    bm25: BM25Index
    build_s: float
    bm25_build_s: float


def build_indexes(corpus: SyntheticCorpus, path: Path) -> _Indexes:
    """A chroma store in `path` filled in batches, and the BM25 index, both timed."""
    batch = StoreSettings().batch_size
    with Stopwatch() as chroma_sw:
        store = ChromaStore(path, "bench", batch_size=batch)
        for start in range(0, len(corpus.chunks), UPSERT_BATCH):
            end = start + UPSERT_BATCH
            store.upsert(corpus.chunks[start:end], corpus.vectors[start:end])
    with Stopwatch() as bm25_sw:
        bm25 = BM25Index.build(corpus.chunks)
    return _Indexes(store, bm25, chroma_sw.seconds, bm25_sw.seconds)


@dataclass
class _Samples:
    total_s: list[float]
    parts_ms: dict[str, list[float]]


def _time_queries(
    retriever: HybridRetriever, queries: Sequence[BenchQuery]
) -> dict[Mode, _Samples]:
    """Each query in both modes back to back, the first mode alternating per query."""
    samples = {mode: _Samples([], {}) for mode in MODES}
    for n, query in enumerate(queries):
        for mode in MODES if n % 2 == 0 else MODES[::-1]:
            with Stopwatch() as sw:
                found = retriever.retrieve(query.text, query.filters, mode=mode)
            sample = samples[mode]
            sample.total_s.append(sw.seconds)
            index_ms = sw.seconds * 1000 - found.timings_ms.get("embed_ms", 0.0)
            parts = dict(found.timings_ms, index_ms=index_ms)
            parts["rest_ms"] = index_ms - parts.get("dense_ms", 0.0) - parts.get("bm25_ms", 0.0)
            for name, ms in parts.items():
                sample.parts_ms.setdefault(name, []).append(ms)
    return samples


def _parts_p50(sample: _Samples) -> dict[str, float]:
    return {name: round(percentile(ms, 50), 2) for name, ms in sorted(sample.parts_ms.items())}


def _measure(
    indexes: _Indexes, queries: Sequence[BenchQuery], dim: int
) -> dict[str, dict[Mode, _Samples]]:
    embedder = LookupEmbedder({q.text: q.vector for q in queries}, dim)
    bm25 = indexes.bm25
    retriever = HybridRetriever(embedder, indexes.store, lambda: bm25, RetrievalSettings())
    warm, timed = queries[:WARMUP], queries[WARMUP:]
    _time_queries(retriever, warm)
    return {
        "plain": _time_queries(retriever, [q for q in timed if q.filters is None]),
        "filtered": _time_queries(retriever, [q for q in timed if q.filters is not None]),
    }


def _size_result(
    indexes: _Indexes, timed: dict[str, dict[Mode, _Samples]], embed_ms_p50: float | None
) -> dict[str, Any]:
    plain, filtered = timed["plain"], timed["filtered"]
    n = len(indexes.bm25)
    result: dict[str, Any] = {
        "chunks": n,
        "build_s": round(indexes.build_s, 2),
        "build_chunks_per_s": round(n / indexes.build_s, 1) if indexes.build_s else None,
        "bm25_build_s": round(indexes.bm25_build_s, 2),
        "hybrid": summary_ms(plain["hybrid"].total_s),
        "dense": summary_ms(plain["dense"].total_s),
        "hybrid_filtered": summary_ms(filtered["hybrid"].total_s),
        "dense_filtered": summary_ms(filtered["dense"].total_s),
        "bm25_share_p50_ms": round(percentile(plain["hybrid"].parts_ms["bm25_ms"], 50), 2),
        "parts_p50_ms": {
            f"{mode}{tag}": _parts_p50(samples[mode])
            for tag, samples in (("", plain), ("_filtered", filtered))
            for mode in MODES
        },
    }
    if embed_ms_p50 is not None:
        result["hybrid_total_p50_ms"] = round(result["hybrid"]["p50_ms"] + embed_ms_p50, 2)
    return result


def _close(store: ChromaStore) -> None:
    """Let chroma go of the folder before it is deleted (best effort: a private client)."""
    client = getattr(store, "_client", None)
    close = getattr(client, "close", None)
    if callable(close):
        close()


def measure_size(
    size: int,
    *,
    dim: int,
    queries: int,
    embed_ms_p50: float | None,
    work_dir: Path | None,
    seed: int,
) -> dict[str, Any]:
    """Build, warm up and time one corpus size; its temporary folder is deleted after."""
    corpus = synthetic_corpus(size, dim=dim, seed=seed)
    bench_queries = synthetic_queries(corpus, queries + WARMUP, seed=seed)
    folder = Path(tempfile.mkdtemp(prefix=f"bench-{size}-", dir=work_dir))
    try:
        indexes = build_indexes(corpus, folder / "chroma")
        del corpus
        timed = _measure(indexes, bench_queries, dim)
        result = _size_result(indexes, timed, embed_ms_p50)
        _close(indexes.store)
        return result
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        gc.collect()


def run(
    sizes: Sequence[int] = (1_000, 10_000, 100_000),
    *,
    dim: int = 768,
    queries: int = 200,
    embed_ms_p50: float | None = None,
    work_dir: Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Index latency of hybrid and dense retrieval per corpus size (see module docstring)."""
    settings = RetrievalSettings()
    return {
        "dim": dim,
        "queries": queries,
        "filtered_every": FILTERED_EVERY,
        "seed": seed,
        "embed_ms_p50": embed_ms_p50,
        "retrieval": {
            "candidates": settings.candidates,
            "top_k": settings.top_k,
            "fusion": settings.fusion,
        },
        "sizes": {
            str(size): measure_size(
                size,
                dim=dim,
                queries=queries,
                embed_ms_p50=embed_ms_p50,
                work_dir=work_dir,
                seed=seed,
            )
            for size in sizes
        },
    }


def rows(result: Mapping[str, Any]) -> list[list[str]]:
    """[measure, value, notes] per size: unfiltered hybrid and dense p50 and p95, index only."""
    out = []
    for size, r in result["sizes"].items():
        hybrid, dense = r["hybrid"], r["dense"]
        total = r.get("hybrid_total_p50_ms")
        notes = [
            f"p95 {hybrid['p95_ms']:.1f} / {dense['p95_ms']:.1f} ms",
            f"filtered p50 {r['hybrid_filtered']['p50_ms']:.1f} / "
            f"{r['dense_filtered']['p50_ms']:.1f} ms",
            f"build {r['build_s']:.0f} s",
        ]
        if total is not None:
            notes.append(f"hybrid with query embedding {total:.1f} ms p50")
        out.append(
            [
                f"retrieval at {int(size):,} chunks, hybrid / dense (index only)",
                f"{hybrid['p50_ms']:.1f} / {dense['p50_ms']:.1f} ms p50",
                "; ".join(notes),
            ]
        )
    return out


def report(result: Mapping[str, Any]) -> None:
    """Print the table rows, then the BM25 share and build times per size."""
    for row in rows(result):
        print(" | ".join(row))
    for size, r in result["sizes"].items():
        print(
            f"{int(size):>7,} chunks: chroma build {r['build_s']} s "
            f"({r['build_chunks_per_s']} chunks/s), BM25 build {r['bm25_build_s']} s, "
            f"BM25 p50 {r['bm25_share_p50_ms']} ms; parts p50 {r['parts_p50_ms']}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    import json

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embed-ms-p50", type=float, default=None)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    result = run(
        args.sizes,
        dim=args.dim,
        queries=args.queries,
        embed_ms_p50=args.embed_ms_p50,
        work_dir=args.work_dir,
        seed=0,
    )
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
