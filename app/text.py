"""Language detection and word tokenisation that work for Chinese and English.

Used by BM25, by the citation support check and by the eval metrics, so the
three agree on what a "word" is.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache

from app.domain import Lang

logger = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LETTER = re.compile(r"[A-Za-z\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[a-z0-9]+(?:[.'][a-z0-9]+)*")

# Words that carry no evidence: matching them says nothing about support.
_EN_STOP = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "it",
        "its",
        "this",
        "that",
        "these",
        "those",
        "i",
        "you",
        "he",
        "she",
        "we",
        "they",
        "me",
        "my",
        "your",
        "our",
        "their",
        "do",
        "does",
        "did",
        "can",
        "could",
        "will",
        "would",
        "shall",
        "should",
        "may",
        "might",
        "must",
        "have",
        "has",
        "had",
        "not",
        "no",
        "so",
        "than",
        "then",
        "there",
        "what",
        "which",
        "who",
        "whom",
        "how",
        "when",
        "where",
        "why",
        "please",
        "about",
        "into",
        "over",
        "also",
        "just",
        "any",
        "all",
        "some",
        "us",
        "am",
        "s",
        "t",
    ]
)
_ZH_STOP = frozenset(
    [
        "的",
        "了",
        "是",
        "在",
        "和",
        "与",
        "及",
        "或",
        "我",
        "你",
        "您",
        "他",
        "她",
        "它",
        "我们",
        "你们",
        "他们",
        "这",
        "那",
        "这个",
        "那个",
        "吗",
        "呢",
        "吧",
        "啊",
        "就",
        "都",
        "也",
        "还",
        "又",
        "把",
        "被",
        "对",
        "为",
        "以",
        "之",
        "其",
        "而",
        "并",
        "但",
        "如果",
        "可以",
        "什么",
        "怎么",
        "哪些",
        "多少",
        "有",
        "没有",
        "请问",
        "一下",
        "一个",
        "会",
        "能",
        "要",
        "想",
        # Function words that BM25 would otherwise match anywhere ("到哪了").
        "到",
        "哪",
        "哪里",
        "哪儿",
        "几",
        "给",
        "让",
        "从",
        "向",
        "时候",
        "已经",
        "需要",
    ]
)
STOPWORDS = _EN_STOP | _ZH_STOP


def detect_lang(text: str) -> Lang:
    """'zh' when at least a fifth of the letters are CJK ideographs, else 'en'."""
    letters = _LETTER.findall(text)
    if not letters:
        return "en"
    cjk = sum(1 for ch in letters if _CJK.match(ch))
    return "zh" if cjk / len(letters) >= 0.2 else "en"


@lru_cache(maxsize=1)
def _jieba() -> object:
    import jieba

    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def words(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Lower-cased word tokens; Chinese runs are segmented with jieba (search mode)."""
    out: list[str] = []
    for run in _RUN.findall(text.lower()):
        if _CJK.match(run):
            jieba = _jieba()
            out.extend(
                w
                for w in jieba.lcut_for_search(run)  # type: ignore[attr-defined]
                if w.strip()
            )
        else:
            out.append(run)
    if keep_stopwords:
        return out
    return [w for w in out if w not in STOPWORDS]
