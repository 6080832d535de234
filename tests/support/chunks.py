"""Passages for tests, and putting them into a running app's store and keyword index."""

from collections.abc import Sequence

from fastapi.testclient import TestClient

from app.domain import Chunk, MetaValue


def policy_chunk(
    doc_id: str,
    text: str,
    *,
    title: str | None = None,
    kind: str = "policy",
    lang: str = "en",
    **extra: MetaValue,
) -> Chunk:
    """The one chunk (`<doc_id>#0`) of a one-chunk document, with the metadata ingest writes;
    the title is the document id unless given. `extra` adds metadata (an FAQ's question)."""
    meta: dict[str, MetaValue] = {
        "doc_id": doc_id,
        "title": doc_id if title is None else title,
        "source": f"{doc_id}.md",
        "kind": kind,
        "lang": lang,
        "content_hash": "h",
        "n_chunks": 1,
        "chunk_index": 0,
        **extra,
    }
    return Chunk(f"{doc_id}#0", doc_id, text, meta)


def seed(client: TestClient, chunks: Sequence[Chunk], texts: Sequence[str] | None = None) -> None:
    """Upsert `chunks` into the store of `client`'s app, embedded from `texts` (their own
    text unless given), and reload its BM25 index so that both searches see them."""
    container = client.app.state.container  # type: ignore[attr-defined]
    embedded = [c.text for c in chunks] if texts is None else list(texts)
    container.store.upsert(list(chunks), container.embedder.embed_documents(embedded))
    container.lexical.reload()
