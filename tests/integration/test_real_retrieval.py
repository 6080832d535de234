"""Real chromadb on disk, the real embedding model, the BM25 index: ingest and retrieve."""

from pathlib import Path

import pytest

from app.config import RetrievalSettings
from app.container import build_store
from app.embeddings import Embedder
from app.retrieval.hybrid import HybridRetriever
from app.retrieval.lexical import LexicalIndex
from ingest.pipeline import ingest
from tests.support.settings import real_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def retriever(shop_dir: Path, data_dir: Path, embedder: Embedder) -> HybridRetriever:
    settings = real_settings(data_dir)
    store = build_store(settings)
    report = ingest(
        [shop_dir],
        embedder=embedder,
        store=store,
        chunking=settings.chunking,
        bm25_path=settings.bm25_path,
    )
    assert report.ok, report.failures
    lexical = LexicalIndex(store, settings)
    return HybridRetriever(embedder, store, lambda: lexical.current, RetrievalSettings())


@pytest.mark.parametrize(
    ("question", "doc_id"),
    [
        ("How many days do I have to send something back?", {"t-returns-en"}),
        ("收到货以后多久之内可以退？", {"t-returns-zh"}),
        ("我的包裹到哪了？", {"t-faq-zh-1", "t-faq-en-1"}),
        ("Are the running earbuds waterproof?", {"t-prod-1-en"}),
    ],
)
def test_hybrid_finds_the_right_document(
    retriever: HybridRetriever, question: str, doc_id: set[str]
) -> None:
    result = retriever.retrieve(question, k=3)
    assert result.passages[0].chunk.doc_id in doc_id
    assert result.best_dense is not None
    assert result.best_dense > 0.3


def test_cross_language_query_reaches_the_other_language(retriever: HybridRetriever) -> None:
    result = retriever.retrieve("退货期限", {"lang": "en"}, k=2)
    assert result.passages[0].chunk.doc_id == "t-returns-en"


def test_off_topic_question_scores_low(retriever: HybridRetriever) -> None:
    on_topic = retriever.retrieve("Can I return opened earbuds?").best_dense
    off_topic = retriever.retrieve("What is the boiling point of mercury?").best_dense
    assert on_topic is not None
    assert off_topic is not None
    assert off_topic < on_topic - 0.15


def test_faq_vector_is_its_question(retriever: HybridRetriever) -> None:
    top = retriever.retrieve("How do I track my parcel?", k=1).passages[0]
    assert top.chunk.doc_id == "t-faq-en-1"
    assert top.dense_score is not None
    assert top.dense_score > 0.6


def test_store_persists_and_reingest_writes_nothing(
    shop_dir: Path, data_dir: Path, embedder: Embedder, retriever: HybridRetriever
) -> None:
    settings = real_settings(data_dir)
    reopened = build_store(settings)  # a second client on the same directory
    assert reopened.count() > 0
    report = ingest(
        [shop_dir],
        embedder=embedder,
        store=reopened,
        chunking=settings.chunking,
        bm25_path=settings.bm25_path,
    )
    assert report.chunks_written == 0
    assert report.unchanged == report.documents
