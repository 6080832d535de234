"""Citations checked by the pipeline, not trusted from the model.

Each answer sentence keeps a citation only when the cited passage holds
enough of the sentence's words (`min_support`); a sentence without a valid
citation gets the passage that supports it best, and a sentence that no
passage supports is dropped. Citations are renumbered in order of use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from app.domain import Citation, RetrievedChunk
from app.text import words

_MARKER = re.compile(r"\s*[\[【]\s*(\d+(?:\s*[,，、]\s*\d+)*)\s*[\]】]")
_SENTENCE = re.compile(
    r"[^。！？!?\n]+?(?:[。！？!?]+|\.(?=\s|$)|\n|$)(?:\s*[\[【][\d,，、\s]+[\]】])*"
)
_REFUSAL = re.compile(
    r"i\s+(?:do\s+not|don't|dont)\s+know|cannot\s+answer|can't\s+answer|不知道|无法回答|没有(?:相关)?(?:信息|资料)",
    re.IGNORECASE,
)
# "as stated in [2]" / "according to passage [1]" lose their marker; drop the phrase too.
_LEAD_IN = re.compile(
    r",?\s*(?:as\s+(?:stated|mentioned|shown|described)\s+in|according\s+to|see)"
    r"(?:\s+(?:passage|document|source)s?)?\s*(?=[.!?]|$)|(?:根据|参见)(?:资料)?\s*(?=[。！？]|$)",
    re.IGNORECASE,
)
SNIPPET_CHARS = 240
ECHO_SUPPORT = 0.8


@dataclass(frozen=True)
class CheckedAnswer:
    text: str
    citations: list[Citation]
    kept_sentences: int
    dropped_sentences: int


def is_refusal(text: str) -> bool:
    return bool(_REFUSAL.search(text))


def split_sentences(text: str) -> list[str]:
    """Sentences with their trailing citation markers still attached."""
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


Weigher = Callable[[str], float]


def support(sentence_words: set[str], passage_words: set[str], weight: Weigher) -> float:
    """IDF-weighted share of the sentence's words that the passage contains.

    Weighting matters: words found everywhere (the shop's name, "order") must
    not let an invented sentence borrow support from any passage.
    """
    total = sum(weight(w) for w in sentence_words)
    if not total:
        return 0.0
    return sum(weight(w) for w in sentence_words & passage_words) / total


def best_snippet(passage: str, claim_words: set[str]) -> str:
    """The passage sentence that overlaps the claim most, as the visible evidence."""
    candidates = split_sentences(passage) or [passage]
    best = max(candidates, key=lambda s: len(claim_words & set(words(s))))
    if len(best) < 60 and len(passage) > len(best):
        best = passage
    return best if len(best) <= SNIPPET_CHARS else best[: SNIPPET_CHARS - 1] + "…"


def _with_marks(body: str, marks: str) -> str:
    """Markers go before the sentence's closing punctuation: "… 30 days [1]." / "…退货[1]。"."""
    stripped = body.rstrip("。！？!?.；;")
    end = body[len(stripped) :]
    space = "" if stripped and "\u4e00" <= stripped[-1] <= "\u9fff" else " "
    return f"{stripped}{space}{marks}{end}"


def _uniform(_: str) -> float:
    return 1.0


def check(
    answer: str,
    passages: list[RetrievedChunk],
    min_support: float,
    weight: Weigher = _uniform,
    question: str = "",
) -> CheckedAnswer:
    """Validate, repair and renumber citations; drop sentences nothing supports.

    A sentence made only of the question's own words ("Yes, we have a store in
    Chengdu") asserts the shopper's premise; it must be (almost) wholly in
    the passage (`ECHO_SUPPORT`), or a stray shared word would confirm it.
    """
    asked = set(words(question))
    passage_words = [set(words(f"{p.chunk.title}\n{p.chunk.text}")) for p in passages]
    numbering: dict[int, int] = {}
    claims: dict[int, set[str]] = {}
    out: list[str] = []
    dropped = 0
    for sentence in split_sentences(answer):
        cited = [int(n) for m in _MARKER.findall(sentence) for n in re.split(r"[,，、\s]+", m) if n]
        body = _LEAD_IN.sub("", _MARKER.sub("", sentence)).strip().lstrip("：:，,;； ")
        toks = set(words(body))
        if not toks:
            if body:
                out.append(body)
            continue
        needed = max(min_support, ECHO_SUPPORT) if toks <= asked else min_support
        scores = {i: support(toks, pw, weight) for i, pw in enumerate(passage_words)}
        valid = [n - 1 for n in dict.fromkeys(cited) if 0 < n <= len(passages)]
        valid = [i for i in valid if scores[i] >= needed]
        if not valid and scores:
            best = max(scores, key=lambda i: (scores[i], -i))
            if scores[best] >= needed:
                valid = [best]
        if not valid:
            dropped += 1
            continue
        marks = []
        for i in valid:
            numbering.setdefault(i, len(numbering) + 1)
            claims.setdefault(i, set()).update(toks)
            marks.append(f"[{numbering[i]}]")
        out.append(_with_marks(body, "".join(marks)))
    citations = [
        Citation(
            n=n,
            doc_id=passages[i].chunk.doc_id,
            title=passages[i].chunk.title,
            source=str(passages[i].chunk.metadata.get("source", "")),
            snippet=best_snippet(passages[i].chunk.text, claims[i]),
        )
        for i, n in sorted(numbering.items(), key=lambda item: item[1])
    ]
    joiner = "" if any("\u4e00" <= ch <= "\u9fff" for ch in answer) else " "
    return CheckedAnswer(joiner.join(out), citations, len(out), dropped)
