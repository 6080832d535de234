"""Is an answer sentence supported by the passages it cites? A check independent of the pipeline's.

The pipeline keeps a sentence when the cited passage holds enough of its
words (`app/rag/citations.py`); scoring grounding with that same rule would
only measure the rule against itself. The harness uses a different judge:

1. meaning: the embedding model's cosine between the sentence and the most
   similar sentence (or pair of neighbouring sentences) of the cited passages
   must reach `threshold`;
2. numbers: every number in the sentence must occur in the cited passages
   (the 1.5B model's typical slip is a wrong fee or a wrong number of days);
3. polarity: the sentence and its best-matching passage sentence must agree
   on negation ("we do not offer cash on delivery" vs "we offer …").

It is checked against `eval/data/grounding_checked.jsonl`, a hand-labelled
sample (sentence, passage, supported?), with `calibrate`: the threshold is
picked on one half and its error measured on the other, both ways round.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from app.embeddings import Embedder
from app.rag.citations import split_sentences

CHECKED_SAMPLE = Path(__file__).parent / "data" / "grounding_checked.jsonl"
DEFAULT_THRESHOLD = 0.6
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_MARKER = re.compile(r"\s*[\[【]\s*\d+(?:\s*[,，、]\s*\d+)*\s*[\]】]")
_NEGATION = re.compile(
    r"\b(?:not|no|never|cannot|can't|won't|don't|doesn't|isn't|aren't|without)\b"
    r"|不(?:提供|支持|接受|能|可|会|予|是|包括|退|适用)|没有|无法|未经|非",
    re.IGNORECASE,
)
_CN_DIGITS = {
    "一": "1",
    "两": "2",
    "二": "2",
    "三": "3",
    "四": "4",
    "五": "5",
    "六": "6",
    "七": "7",
}


def numbers(text: str) -> set[str]:
    """Numbers written with digits, plus single Chinese numerals before a unit (两年 → 2)."""
    found = set(_NUMBER.findall(text))
    found.update(_CN_DIGITS[m] for m in re.findall(r"([一两二三四五六七])[年个天周月]", text))
    return found


def negated(text: str) -> bool:
    return bool(_NEGATION.search(text))


@dataclass(frozen=True)
class Verdict:
    supported: bool
    similarity: float
    numbers_ok: bool
    polarity_ok: bool


class GroundingJudge:
    def __init__(self, embedder: Embedder, threshold: float = DEFAULT_THRESHOLD) -> None:
        self._embedder = embedder
        self.threshold = threshold

    def _vectors(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.asarray(self._embedder.embed_documents(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        unit: np.ndarray = vectors / np.maximum(norms, 1e-12)
        return unit

    def judge(self, sentences: Sequence[str], passages: Sequence[str]) -> list[Verdict]:
        """One verdict per sentence against the union of the cited passages."""
        if not sentences:
            return []
        if not passages:
            return [Verdict(False, 0.0, False, False) for _ in sentences]
        units: list[str] = []
        for passage in passages:
            parts = split_sentences(passage) or [passage]
            units.extend(parts)
            units.extend(f"{a} {b}" for a, b in pairwise(parts))
        found = set().union(*(numbers(p) for p in passages))
        sims = self._vectors(sentences) @ self._vectors(units).T
        verdicts = []
        for i, sentence in enumerate(sentences):
            best = int(np.argmax(sims[i]))
            similarity = float(sims[i][best])
            numbers_ok = numbers(sentence) <= found
            polarity_ok = negated(sentence) == negated(units[best])
            verdicts.append(
                Verdict(
                    similarity >= self.threshold and numbers_ok and polarity_ok,
                    similarity,
                    numbers_ok,
                    polarity_ok,
                )
            )
        return verdicts

    def grounded_share(self, answer: str, passages: Sequence[str]) -> float | None:
        """Share of the answer's sentences that the cited passages support (None: no sentences)."""
        sentences = [s for s in (_MARKER.sub("", x).strip() for x in split_sentences(answer)) if s]
        verdicts = self.judge(sentences, passages)
        if not verdicts:
            return None
        return sum(v.supported for v in verdicts) / len(verdicts)


@dataclass(frozen=True)
class CheckedRow:
    sentence: str
    passage: str
    supported: bool
    lang: str


def load_checked(path: Path = CHECKED_SAMPLE) -> list[CheckedRow]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            raw = json.loads(line)
            rows.append(CheckedRow(raw["sentence"], raw["passage"], raw["supported"], raw["lang"]))
    return rows


def _accuracy(rows: Sequence[CheckedRow], verdicts: Sequence[Verdict], threshold: float) -> float:
    right = sum(
        (v.similarity >= threshold and v.numbers_ok and v.polarity_ok) == r.supported
        for r, v in zip(rows, verdicts, strict=True)
    )
    return right / len(rows)


def calibrate(judge: GroundingJudge, rows: Sequence[CheckedRow]) -> dict[str, float]:
    """Two-fold: pick the threshold on one half, measure accuracy on the other, both ways."""
    verdicts = [judge.judge([r.sentence], [r.passage])[0] for r in rows]
    grid = [round(0.3 + 0.025 * i, 3) for i in range(25)]
    halves = (list(range(0, len(rows), 2)), list(range(1, len(rows), 2)))
    held_out = []
    picked = []
    for tune, test in (halves, halves[::-1]):
        t_rows, t_verdicts = [rows[i] for i in tune], [verdicts[i] for i in tune]
        best = max(grid, key=lambda t: (_accuracy(t_rows, t_verdicts, t), -abs(t - 0.6)))
        picked.append(best)
        held_out.append(_accuracy([rows[i] for i in test], [verdicts[i] for i in test], best))
    at_default = [v.supported for v in verdicts]
    truth = [r.supported for r in rows]
    tp = sum(p and t for p, t in zip(at_default, truth, strict=True))
    return {
        "n": len(rows),
        "threshold": judge.threshold,
        "accuracy": round(_accuracy(rows, verdicts, judge.threshold), 3),
        "precision": round(tp / max(1, sum(at_default)), 3),
        "recall": round(tp / max(1, sum(truth)), 3),
        "held_out_accuracy": round(sum(held_out) / 2, 3),
        "thresholds_picked": float(np.mean(picked)),
    }
