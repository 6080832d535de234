"""Deterministic metrics: retrieval over document ids, citations, answer overlap, percentiles."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence


def dedupe(doc_ids: Sequence[str]) -> list[str]:
    """Document ids in first-seen order (several chunks of one doc count once)."""
    return list(dict.fromkeys(doc_ids))


def recall_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Share of the distinct gold documents found in the first k ranked ids (0 for no gold)."""
    if not gold:
        return 0.0
    return len(set(ranked[:k]) & set(gold)) / len(set(gold))


def mrr_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """1 / rank of the first gold document in the first k ids; 0 when none is there."""
    for rank, doc in enumerate(ranked[:k], start=1):
        if doc in set(gold):
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: Sequence[str], k: int) -> float:
    """Binary-relevance nDCG@k: sum of 1 / log2(rank + 1) over gold hits, divided by the
    same sum with every gold document ranked first (at most k of them)."""
    wanted = set(gold)
    dcg = sum(1.0 / math.log2(i + 2) for i, d in enumerate(ranked[:k]) if d in wanted)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(wanted), k)))
    return dcg / ideal if ideal else 0.0


# --- citations -------------------------------------------------------------


def citation_precision(
    cited: Sequence[str], gold: Sequence[str], partial: Sequence[str] = ()
) -> float:
    """Share of the distinct cited documents that are gold or partial gold.

    A strict lower bound of citation quality: a cited document that also
    supports the answer but is not listed counts against it. 0 when nothing
    is cited (an answer without citations has no correct ones).
    """
    docs = dedupe(cited)
    if not docs:
        return 0.0
    good = set(gold) | set(partial)
    return sum(doc in good for doc in docs) / len(docs)


def citation_recall(cited: Sequence[str], gold: Sequence[str]) -> float:
    """Share of the distinct gold documents (`source_doc_ids`, not partial ones) that
    the answer cites: |cited ∩ gold| / |gold|. 0 when nothing is cited or no gold."""
    wanted = set(gold)
    if not wanted:
        return 0.0
    return len(set(cited) & wanted) / len(wanted)


# --- answers ---------------------------------------------------------------

_MARKER = re.compile(r"\[\d+(?:[,，、\s]*\d+)*\]|【\d+】")
_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[a-z0-9]+(?:[.'][a-z0-9]+)*")
_ARTICLES = {"a", "an", "the"}


def answer_tokens(text: str) -> list[str]:
    """Tokens for answer overlap: one per Chinese character, lower-cased English words.

    Characters, not jieba words, for Chinese: the usual choice for Chinese
    reading-comprehension F1 (CMRC), and immune to segmentation disagreements
    between a paraphrase and its reference. Citation markers and punctuation
    are dropped; English articles too, as in SQuAD's normalisation.
    """
    text = _MARKER.sub(" ", text).lower()
    return [t for t in _TOKEN.findall(text) if t not in _ARTICLES]


def token_f1(prediction: str, references: Sequence[str]) -> float:
    """Best bag-of-tokens F1 of the prediction against any reference."""
    pred = Counter(answer_tokens(prediction))
    best = 0.0
    for reference in references:
        ref = Counter(answer_tokens(reference))
        common = sum((pred & ref).values())
        if not common:
            continue
        precision = common / sum(pred.values())
        recall = common / sum(ref.values())
        best = max(best, 2 * precision * recall / (precision + recall))
    return best


def exact_match(prediction: str, references: Sequence[str]) -> float:
    tokens = answer_tokens(prediction)
    return float(any(tokens == answer_tokens(r) for r in references if r.strip()))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)
