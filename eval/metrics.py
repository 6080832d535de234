"""Deterministic retrieval metrics over document ids (kept apart from LLM-judged ones)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def dedupe(doc_ids: Sequence[str]) -> list[str]:
    """Document ids in first-seen order (several chunks of one doc count once)."""
    return list(dict.fromkeys(doc_ids))


def recall_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    if not gold:
        return 0.0
    return len(set(ranked[:k]) & set(gold)) / len(set(gold))


def mrr_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in set(gold):
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    wanted = set(gold)
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in wanted)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(wanted), k)))
    return dcg / ideal if ideal else 0.0
