"""One golden row, one system: the reply and the ranking turned into per-item metrics.

What each number means:
- retrieval (answerable rows with gold documents): recall@1/5/10, MRR@10,
  nDCG@10 over the ranked document ids;
- citations, on *answered* (not refused) answerable rows with gold documents
  (a refusal has no citations to grade; it counts as a false refusal instead):
  `citation_precision` = distinct cited documents that are in
  `source_doc_ids` or `partial_doc_ids` / distinct cited documents, a strict
  lower bound; `citation_recall` = distinct `source_doc_ids` the answer cites
  / distinct `source_doc_ids` (a verbatim FAQ answer cites one document, so a
  row with two gold documents scores 0.5 there); both are 0 for an answer
  with no citation. `citation_support`: cited documents whose text the
  grounding judge finds supporting at least one answer sentence (any answered
  row); `cited`: the answer carries at least one citation;
- answers (answerable rows): token F1 and exact match against the reference
  (or any of `all_answers`), semantic similarity with the embedding model; a
  refusal scores its own text, so false refusals pull these down;
- `grounded_share`: answer sentences the judge finds supported by the cited
  documents (`eval/grounding.py`);
- `refused`, with `answerable`, gives the refusal and false-refusal rates. The
  reply is scored as the shopper gets it from the turn pipeline: on an answerable
  row, a hand-off, greeting, queued notice or tool reply that the row does not
  expect (`expected_outcomes`) is a refusal too; on an unanswerable row, a refusal
  or a hand-off is the right non-answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from app.embeddings import Embedder
from eval.backends import Ranked
from eval.golden import GoldenRow
from eval.grounding import GroundingJudge
from eval.metrics import (
    citation_precision,
    citation_recall,
    exact_match,
    mrr_at,
    ndcg_at,
    recall_at,
    token_f1,
)

_MARKER = re.compile(r"\s*[\[【]\s*\d+(?:\s*[,，、]\s*\d+)*\s*[\]】]")
DocTexts = Callable[[str], list[str]]


def retrieval_metrics(ranked: Ranked, gold: Sequence[str]) -> dict[str, float]:
    return {
        "recall@1": recall_at(ranked.doc_ids, gold, 1),
        "recall@5": recall_at(ranked.doc_ids, gold, 5),
        "recall@10": recall_at(ranked.doc_ids, gold, 10),
        "mrr@10": mrr_at(ranked.doc_ids, gold, 10),
        "ndcg@10": ndcg_at(ranked.doc_ids, gold, 10),
    }


def similarity(embedder: Embedder, answer: str, references: Sequence[str]) -> float:
    """Best cosine between the answer and any reference."""
    vectors = np.asarray(embedder.embed_documents([answer, *references]), dtype=np.float32)
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return float(np.max(vectors[1:] @ vectors[0]))


ANSWERS = frozenset({"faq", "generated"})
NON_ANSWERS = frozenset({"refused", "handoff", "queued"})


def not_an_answer(row: GoldenRow, outcome: str) -> bool:
    """Whether the reply leaves the row's question unanswered, as the shopper sees it."""
    if row.answerable:
        return outcome not in ANSWERS | set(row.expected_outcomes or [])
    return outcome in NON_ANSWERS


def answer_metrics(
    row: GoldenRow,
    reply: dict[str, Any],
    judge: GroundingJudge,
    embedder: Embedder,
    doc_texts: DocTexts,
) -> dict[str, Any]:
    answer = _MARKER.sub("", str(reply["answer"])).strip()
    refused = not_an_answer(row, str(reply["outcome"]))
    cited = list(dict.fromkeys(str(c["doc_id"]) for c in reply["citations"]))
    out: dict[str, Any] = {"outcome": reply["outcome"], "refused": refused, "cited_docs": cited}
    if not refused:
        out["cited"] = float(bool(cited))
        texts = [t for doc in cited for t in doc_texts(doc)]
        out["grounded_share"] = judge.grounded_share(str(reply["answer"]), texts)
        if cited:
            out["citation_support"] = sum(
                (judge.grounded_share(str(reply["answer"]), doc_texts(doc)) or 0.0) > 0
                for doc in cited
            ) / len(cited)
    if row.answerable and row.source_doc_ids and not refused:
        gold = row.source_doc_ids
        out["citation_precision"] = citation_precision(cited, gold, row.partial_doc_ids or [])
        out["citation_recall"] = citation_recall(cited, gold)
    references = row.all_answers or ([row.reference_answer] if row.reference_answer else [])
    if row.answerable and references:
        out["token_f1"] = token_f1(answer, references)
        out["exact_match"] = exact_match(answer, references)
        out["semantic_similarity"] = similarity(embedder, answer or "-", references)
    timings = reply.get("timings_ms", {})
    out["timings_ms"] = timings
    out["cached"] = bool(reply.get("cached"))
    return out
