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


class CitationChecker:
    """Checks an answer one sentence at a time, so a stream can send each sentence once it
    has passed (`sentence`), and numbers citations in order of first use (`citations`).

    A sentence made only of the question's own words ("Yes, we have a store in
    Chengdu") asserts the shopper's premise; it must be (almost) wholly in
    the passage (`ECHO_SUPPORT`), or a stray shared word would confirm it.
    """

    def __init__(
        self,
        passages: list[RetrievedChunk],
        min_support: float,
        weight: Weigher = _uniform,
        question: str = "",
    ) -> None:
        self._passages = passages
        self._min_support = min_support
        self._weight = weight
        self._asked = set(words(question))
        self._passage_words = [set(words(f"{p.chunk.title}\n{p.chunk.text}")) for p in passages]
        self._numbering: dict[int, int] = {}
        self._claims: dict[int, set[str]] = {}
        self.kept = 0
        self.dropped = 0

    def sentence(self, sentence: str) -> str | None:
        """The sentence with its citations checked, repaired and renumbered; None when no
        passage supports it (it is dropped). Text with no words (a list bullet) is kept."""
        cited = [int(n) for m in _MARKER.findall(sentence) for n in re.split(r"[,，、\s]+", m) if n]
        body = _LEAD_IN.sub("", _MARKER.sub("", sentence)).strip().lstrip("：:，,;； ")
        toks = set(words(body))
        if not toks:
            return body or None
        needed = max(self._min_support, ECHO_SUPPORT) if toks <= self._asked else self._min_support
        scores = {i: support(toks, pw, self._weight) for i, pw in enumerate(self._passage_words)}
        valid = [n - 1 for n in dict.fromkeys(cited) if 0 < n <= len(self._passages)]
        valid = [i for i in valid if scores[i] >= needed]
        if not valid and scores:
            best = max(scores, key=lambda i: (scores[i], -i))
            if scores[best] >= needed:
                valid = [best]
        if not valid:
            self.dropped += 1
            return None
        marks = []
        for i in valid:
            self._numbering.setdefault(i, len(self._numbering) + 1)
            self._claims.setdefault(i, set()).update(toks)
            marks.append(f"[{self._numbering[i]}]")
        self.kept += 1
        return _with_marks(body, "".join(marks))

    def citations(self) -> list[Citation]:
        """The passages cited so far, numbered in order of first use."""
        return [
            Citation(
                n=n,
                doc_id=self._passages[i].chunk.doc_id,
                title=self._passages[i].chunk.title,
                source=str(self._passages[i].chunk.metadata.get("source", "")),
                snippet=best_snippet(self._passages[i].chunk.text, self._claims[i]),
            )
            for i, n in sorted(self._numbering.items(), key=lambda item: item[1])
        ]


def joiner(before: str, sentence: str) -> str:
    """What goes between two sentences: nothing around Chinese, a space in English."""
    if not before:
        return ""
    if _has_cjk(before[-1]) or _has_cjk(sentence[:1]):
        return ""
    return " "


def _has_cjk(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" or "\u3000" <= ch <= "\u303f" for ch in text)


def check(
    answer: str,
    passages: list[RetrievedChunk],
    min_support: float,
    weight: Weigher = _uniform,
    question: str = "",
) -> CheckedAnswer:
    """Validate, repair and renumber citations; drop sentences nothing supports."""
    checker = CitationChecker(passages, min_support, weight, question)
    text = ""
    for sentence in split_sentences(answer):
        kept = checker.sentence(sentence)
        if kept is not None:
            text += joiner(text, kept) + kept
    return CheckedAnswer(text, checker.citations(), checker.kept, checker.dropped)


class SentenceSplitter:
    """Cuts a stream of text into whole sentences as soon as each is complete.

    A sentence is complete once text that is not one of its citation markers follows it:
    "… 30 days. [1]" keeps its marker even when "[1]" arrives in a later piece.
    """

    def __init__(self) -> None:
        self._buffer = ""

    def feed(self, piece: str) -> list[str]:
        self._buffer += piece
        done: list[str] = []
        while True:
            match = _SENTENCE.search(self._buffer)
            if match is None or match.end() >= len(self._buffer):
                return done
            rest = self._buffer[match.end() :].lstrip()
            if not rest or rest[0] in "[【":
                return done  # its markers may still be arriving
            if match.group(0).strip():
                done.append(match.group(0).strip())
            self._buffer = self._buffer[match.end() :]

    def flush(self) -> list[str]:
        """Every sentence left, once the text has ended."""
        rest, self._buffer = self._buffer, ""
        return split_sentences(rest)
