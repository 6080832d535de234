"""The cheap parts of the fast path: query vectors remembered, prompts packed tight, fair queue."""

import threading
import time

import numpy as np
import pytest

from app.config import AnswerSettings, RetrievalSettings
from app.domain import Chunk, RetrievedChunk
from app.embeddings import HashEmbedder, QueryCache, Vectors
from app.llm.base import Deadline
from app.llm.fake import FakeLLM
from app.llm.gate import GenerationGate
from app.llm.prefix_cache import common_prefix
from app.prompts import PromptLibrary
from app.rag.answer import AnswerService
from app.retrieval.hybrid import Retrieval

pytestmark = pytest.mark.unit


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__()
        self.queries: list[str] = []

    def embed_query(self, text: str) -> Vectors:
        self.queries.append(text)
        return super().embed_query(text)


def test_query_cache_embeds_each_text_once_and_forgets_the_oldest() -> None:
    inner = CountingEmbedder()
    cache = QueryCache(inner, size=2)
    first = cache.embed_query("return policy")
    assert np.array_equal(cache.embed_query("return policy"), first)
    cache.embed_query("shipping")
    cache.embed_query("warranty")  # evicts "return policy"
    cache.embed_query("return policy")
    assert inner.queries == ["return policy", "shipping", "warranty", "return policy"]
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 1.0  # callers share the vector


def _passage(n: int, score: float) -> RetrievedChunk:
    meta = {"doc_id": f"d{n}", "title": f"d{n}", "kind": "policy", "lang": "en"}
    return RetrievedChunk(Chunk(f"d{n}#0", f"d{n}", f"passage {n} " * 20, meta), score, score)


class StubRetriever:
    def __init__(self, passages: list[RetrievedChunk]) -> None:
        self.passages = passages

    def retrieve(self, query: str, filters: object = None) -> Retrieval:
        return Retrieval(self.passages, max(p.score for p in self.passages))

    def term_weight(self, term: str) -> float:
        return 1.0


@pytest.mark.parametrize(("margin", "packed"), [(0.10, 2), (0.0, 1), (1.0, 4)])
def test_only_passages_close_to_the_best_are_packed(margin: float, packed: int) -> None:
    ranked = [_passage(1, 0.70), _passage(2, 0.65), _passage(3, 0.55), _passage(4, 0.40)]
    service = AnswerService(
        StubRetriever(ranked),  # type: ignore[arg-type]
        FakeLLM(4096),
        PromptLibrary(),
        RetrievalSettings(),
        AnswerSettings(pack_margin=margin),
        max_tokens=128,
    )
    plan = service.plan("what is the policy?", "en")
    assert [p.chunk.doc_id for p in plan.passages] == [f"d{n}" for n in range(1, packed + 1)]


def test_the_queue_serves_waiters_in_arrival_order() -> None:
    gate = GenerationGate(max_waiting=8, retry_after_s=1)
    order: list[int] = []
    assert gate.acquire(Deadline(30.0))  # a call holds the model while the others arrive

    def client(n: int) -> None:
        assert gate.acquire(Deadline(30.0))
        order.append(n)
        gate.release()

    threads = []
    for n in range(6):
        threads.append(threading.Thread(target=client, args=(n,), daemon=True))
        threads[-1].start()
        end = time.monotonic() + 5.0
        while gate.waiting < n + 1 and time.monotonic() < end:
            time.sleep(0.001)  # client n arrives before client n + 1
    gate.release()
    for thread in threads:
        thread.join(5.0)
    assert order == [0, 1, 2, 3, 4, 5]


def test_common_prefix_counts_shared_leading_tokens() -> None:
    assert common_prefix([1, 2, 3], [1, 2, 4, 5]) == 2
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2], [1, 2]) == 2
