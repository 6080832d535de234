"""How a shopper feels: negative / neutral / positive, and whether they are angry.

Two signals. Polarity (negative / neutral / positive, and a score) comes from a
`PolarityModel`: in production the classifier on the message's embedding
(`app.dialogue.sentiment_model`), which measured far better on real reviews
than word lists; `LexiconPolarity` here, Chinese and English words flipped by a
nearby negation ("not happy", "不满意") and scaled by intensifiers ("very",
"太"), is the fallback and the unit tests' fake: instant, no training. Anger stays
rules whatever the polarity (`assess`): it has to be explainable ("cues" says
why it fired, which the hand-off policy logs) and editable by the support team:
insults, escalation words (投诉, "chargeback"), ALL-CAPS, "!!!", impatience and a
repeated question.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from app.dialogue.repeats import repeats
from app.domain import Lang
from app.embeddings import Vectors

SentimentLabel = Literal["negative", "neutral", "positive"]


@dataclass(frozen=True)
class Sentiment:
    label: SentimentLabel
    score: float
    """-1 (very negative) .. 1 (very positive)."""
    anger: bool
    """Frustration or anger cues present: a reason to hand off or to soften the reply."""
    cues: tuple[str, ...]
    """Which cues fired, e.g. ("all_caps", "repeated_question", "insult")."""


@dataclass(frozen=True)
class Polarity:
    """What a polarity model says of a message, before the anger rules."""

    label: SentimentLabel
    score: float
    """-1 (very negative) .. 1 (very positive)."""


class PolarityModel(Protocol):
    """Polarity of one message; `vector` is its query embedding when the caller has it."""

    def polarity(self, text: str, vector: Vectors | None = None) -> Polarity: ...


def _weights(spec: str, weight: float) -> dict[str, float]:
    """Space-separated terms, "_" joining the words of a phrase, all with one weight."""
    return {term.replace("_", " "): weight for term in spec.split()}


def _words(spec: str) -> frozenset[str]:
    return frozenset(spec.split())


# English: single words and space-joined phrases (written with "_"), with weights.
_EN_POLARITY = {
    **_weights("good nice fine glad pleased happy like liked likes enjoy enjoyed comfortable", 1.0),
    **_weights("soft quick fast smooth easy helpful worth reliable sturdy solid beautiful", 1.0),
    **_weights("thanks thank thx ty appreciate appreciated cheers lovely patient", 1.0),
    **_weights("great love loved loves excellent amazing awesome perfect perfectly best", 2.0),
    **_weights("fantastic wonderful brilliant impressed satisfied stunning superb delighted", 2.0),
    **_weights("would_recommend highly_recommend will_recommend well_done", 2.0),
    **_weights("five_stars 5_stars will_buy_again exactly_what_i_needed", 2.0),
    **_weights(
        "no_complaints no_problem works_great good_job problem_solved solved_my_problem", 1.5
    ),
    **_weights("better solved resolved sorted", 1.0),
    **_weights("bad poor slow late delay delayed loud noisy flimsy cheap uncomfortable", -1.0),
    **_weights("wrong missing lost leak leaks leaking cracked scratched scratches damaged", -1.0),
    **_weights("broken broke faulty defective stopped dies died peeling shrank squeaks", -1.0),
    **_weights("sadly unfortunately annoying annoyed misleading problem issue regret meh", -1.0),
    **_weights("disappointed disappointing disappointment unhappy dissatisfied upset hate", -1.5),
    **_weights("terrible awful horrible worst garbage useless unacceptable ridiculous", -2.5),
    **_weights("waste_of_money waste_of_time never_again rip_off nobody no_one still_no", -1.5),
}
# Words that carry sentiment only when negated: "doesn't work", "didn't arrive".
_EN_NEGATED_ONLY = _words(
    "work works working worked fit fits help helps helped answer answered reply replied "
    "arrive arrived receive received respond responded"
)
_EN_NEGATORS = _words(
    "not no never without hardly nothing neither nor cannot "
    "dont doesnt didnt isnt wasnt wont cant havent hasnt arent"  # typed without the '
)
_EN_INTENSIFIERS = {
    **_weights("very really so extremely super totally absolutely completely too truly", 1.5),
    **_weights("incredibly highly utterly", 1.5),
    **_weights("bit slightly somewhat kinda quite", 0.6),
}
# Chinese terms matched longest-first in the raw text (no segmentation needed).
_ZH_POLARITY = {
    **_weights("好用 喜欢 满意 不错 很好 好看 漂亮 精美 舒服 合脚 柔软 清晰 顺利 方便", 1.0),
    **_weights("耐心 专业 值 值得 靠谱 放心 划算 实惠 很快 超快 挺快 也快 谢谢 多谢 谢啦", 1.0),
    **_weights("感谢 3q 辛苦了 解决了 回购 好评 耐用 安静 开心 高兴 推荐给 帮大忙 帮了大忙", 1.0),
    **_weights("太好了 太棒 棒 给力 完美 惊喜 惊艳 点赞 最棒 超值 完好无损 没什么可挑剔", 2.0),
    **_weights("坏 慢 吵 贵 弱 糊 漏 裂 丢了 晚了 延迟 断连 杂音 划痕 开胶 缩水 掉漆", -1.0),
    **_weights("不行 掉了 太麻烦 很麻烦 好麻烦 烦 讨厌 后悔 难过 粗糙 不符 不兼容", -1.0),
    **_weights("折腾 白折腾 浪费 没用 没人 不靠谱", -1.0),
    **_weights("失望 不满意 差劲 太差 很差 最差 极差 糟糕 恶心 压坏 摔碎 坑", -1.5),
    **_weights("垃圾 骗子 骗人 黑店 离谱 过分 恶劣 无语 气死 忍无可忍 受够", -2.5),
}
# "麻烦您…" is politeness, not annoyance: matched as a whole so that 烦 does not fire.
_ZH_POLARITY["麻烦"] = 0.0
_ZH_NEGATED_ONLY = _words("兼容 合适 能用 收到 回复 解决 到货")
_ZH_NEGATORS = ("不", "没", "别", "未", "毫无", "不是", "并非", "不怎么", "不够")
_ZH_INTENSIFIERS = {
    **_weights("很 非常 太 特别 超 超级 极 极其 十分 真 好 最 挺 巨", 1.5),
    **_weights("有点 有些 稍微 略", 0.6),
}
_ZH_MAX_TERM = max(len(t) for t in {*_ZH_POLARITY, *_ZH_NEGATED_ONLY})

# Anger cues.
_INSULT = re.compile(
    r"\b(?:idiots?|stupid|useless|incompetent|scam\w*|fraud\w*|liars?|lie[sd]?|thie(?:f|ves)"
    r"|crooks?|garbage|trash|crap|bullshit|wtf|pathetic|clowns|(?:a|what a) joke)\b"
    r"|骗子|骗人|垃圾|废物|黑店|坑人|坑爹|奸商|无良|强盗|智障|有病|脑残|什么破|破玩意|去死",
    re.IGNORECASE,
)
_COMPLAINT = re.compile(
    r"\b(?:(?<!no )complain\w*|report(?:ing)? you|consumer protection|lawyer|sue|chargeback|dispute"
    r"|never (?:again|buying|shopping)|money back|(?:1|one)[- ]star|review sites?)\b"
    r"|投诉|差评|举报|12315|消协|曝光|退钱|维权|起诉|再也不",
    re.IGNORECASE,
)
_ANGER_WORD = re.compile(
    r"\b(?:furious|outrage\w*|disgust\w*|ridiculous|unacceptable|frustrat\w*|angry|fed up"
    r"|sick of|kidding me|(?:absolutely|totally) terrible)\b"
    r"|离谱|过分|忍无可忍|受够|气死|烦死|无语|开什么玩笑|搞什么|太恶劣",
    re.IGNORECASE,
)
_IDENTIFIERS = re.compile(r"\S+@\S+|https?://\S+|\b[A-Za-z]{1,4}-[\w-]*\d[\w-]*")
_IMPATIENCE = re.compile(
    r"\b(?:how many times|still (?:no|not|haven't|hasn't|waiting)|nobody|no one|forever"
    r"|(?:third|fourth|fifth|nth) time|taking (?:so long|forever)|asked .{0,20}times"
    r"|seriously|answer me|fix (?:it|this) now)\b"
    r"|到底|还没|多少遍|[一二三四五六七八九几]遍|第[二三四五几]次|怎么还|一直不|赶紧|马上|装死|没人",
    re.IGNORECASE,
)
_PUNCT_RUN = re.compile(r"[!！?？]{2,}")
_CAPS_WORD = re.compile(r"\b[A-Z]{3,}\b")
_ACRONYMS = _words(
    "USB DHL UPS USPS EMS SKU LED LCD VAT EUR USD GBP RMB CNY HKD ANC OLED HDMI NFC GPS FAQ "
    "SMS APP BPA PDF USA ASAP CEO API RAM SSD HDD CPU GPU LTE PIN DIY IOS ATM VIP ETA COD "
    "XXL EVA ABS PVC TWS LOL OMG"
)
_EN_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[.,;:!?]")
_CLAUSE_BREAK = re.compile(r"[，。；：！？,.;:!?\s]")
_QUESTION_END = re.compile(r"(?:[?？]|[吗呢么])\W*$")
# Thresholds on the squashed score, checked on the train split of data/dialogue/sentiment.jsonl.
_POSITIVE_AT = 0.2
_NEGATIVE_AT = -0.2
# Weak anger cues (caps, "!!", impatience, a repeat): one is anger below this score (the
# message leans negative), two are anger up to the other (it is not clearly positive).
# -0.2, not 0: a classifier's neutral "Where is my order??" scores a little below 0. On the
# train rows of data/dialogue/sentiment.jsonl any value from 0 to -0.3 finds the same anger.
ONE_CUE_BELOW = -0.2
TWO_CUES_UP_TO = 0.1


def _english_score(text: str) -> float:
    tokens = _EN_TOKEN.findall(text.lower().replace("\u2019", "'"))
    phrase_len = max(t.count(" ") + 1 for t in _EN_POLARITY)
    total, i = 0.0, 0
    while i < len(tokens):
        for size in range(phrase_len, 0, -1):
            term = " ".join(tokens[i : i + size])
            if term in _EN_POLARITY or (size == 1 and term in _EN_NEGATED_ONLY):
                break
        else:
            i += 1
            continue
        weight = _EN_POLARITY.get(term, 0.0)
        window = tokens[max(0, i - 3) : i]
        if any(t in ".,;:!?" for t in window):  # negation does not cross a clause
            window = window[max(j for j, t in enumerate(window) if t in ".,;:!?") + 1 :]
        negated = any(t in _EN_NEGATORS or t.endswith("n't") for t in window)
        if term == "like" and window and window[-1] in ("i'd", "would", "you'd", "we'd"):
            weight = 0.0  # "I'd like to return" is a request, not a liking
        weight *= math.prod(_EN_INTENSIFIERS.get(t, 1.0) for t in window[-2:])
        total += _flip(weight, negated, term in _EN_NEGATED_ONLY)
        i += size
    return total


def _flip(weight: float, negated: bool, negated_only: bool) -> float:
    """Negation turns praise into complaint ("not happy") and softens a complaint ("not bad")."""
    if negated_only:
        return -1.0 if negated else 0.0
    if not negated:
        return weight
    return -0.9 * weight if weight > 0 else -0.5 * weight


def _strip_intensifier(prefix: str) -> tuple[float, str]:
    """The degree word right before a term ("太", "不太" → 太) and what precedes it."""
    for term, weight in sorted(_ZH_INTENSIFIERS.items(), key=lambda kv: -len(kv[0])):
        if prefix.endswith(term):
            return weight, prefix[: -len(term)]
    return 1.0, prefix


def _chinese_score(text: str) -> float:
    total, i = 0.0, 0
    while i < len(text):
        for size in range(min(_ZH_MAX_TERM, len(text) - i), 0, -1):
            term = text[i : i + size]
            if term in _ZH_POLARITY or term in _ZH_NEGATED_ONLY:
                break
        else:
            i += 1
            continue
        prefix = _CLAUSE_BREAK.split(text[max(0, i - 4) : i])[-1]
        boost, prefix = _strip_intensifier(prefix)
        weight = _ZH_POLARITY.get(term, 0.0) * boost
        negated = prefix.endswith(_ZH_NEGATORS)
        total += _flip(weight, negated, term in _ZH_NEGATED_ONLY)
        i += size
    return total


def lexicon_polarity(text: str) -> Polarity:
    """The word lists' polarity: weighted terms, negation, intensifiers, squashed to -1..1."""
    text = _IDENTIFIERS.sub(" ", text)  # "nobody@example.org" is an address, not a cue
    raw = _english_score(text) + _chinese_score(text)
    if _QUESTION_END.search(text) and raw > 0:
        raw *= 0.3  # "any good headphones?" asks, it does not praise
    score = raw / math.sqrt(raw * raw + 4.0)
    label: SentimentLabel = "neutral"
    if score >= _POSITIVE_AT:
        label = "positive"
    elif score <= _NEGATIVE_AT:
        label = "negative"
    return Polarity(label, score)


class LexiconPolarity:
    """`lexicon_polarity` as a `PolarityModel`: no training, deterministic (the fake)."""

    def polarity(self, text: str, vector: Vectors | None = None) -> Polarity:
        return lexicon_polarity(text)


def assess(text: str, polarity: Polarity, repeated: bool) -> Sentiment:
    """Adds the anger rules to a polarity; `repeated`: the message repeats an earlier one.

    Insults, escalation and anger words are anger whatever the polarity; the weaker
    cues (shouting, "!!!", impatience, a repeat) only with a polarity that leans
    negative (one cue) or is not clearly positive (two). Anger makes the message
    negative with a score of at most -0.5.
    """
    text = _IDENTIFIERS.sub(" ", text)  # "nobody@example.org" is an address, not a cue
    cues: list[str] = []
    caps = [w for w in _CAPS_WORD.findall(text) if w not in _ACRONYMS]
    if caps:
        cues.append("all_caps")
    if _PUNCT_RUN.search(text) or text.count("!") + text.count("！") >= 3:
        cues.append("exclamations")
    if repeated:
        cues.append("repeated_question")
    if _IMPATIENCE.search(text):
        cues.append("impatience")
    # "!!!" and a whole shouted sentence weigh double.
    strength = len(cues) + (re.search(r"[!！?？]{3,}", text) is not None) + (len(caps) >= 3)
    strong = [
        name
        for name, pattern in (
            ("insult", _INSULT),
            ("complaint_word", _COMPLAINT),
            ("anger_word", _ANGER_WORD),
        )
        if pattern.search(text)
    ]
    cues.extend(strong)
    score, label = polarity.score, polarity.label
    anger = (
        bool(strong)
        or (strength >= 2 and score <= TWO_CUES_UP_TO)
        or (strength >= 1 and score < ONE_CUE_BELOW)
    )
    if anger:
        score, label = min(score, -0.5), "negative"
    return Sentiment(label, round(score, 3), anger, tuple(cues))


def analyse_sentiment(
    text: str, lang: Lang, previous_user_messages: Sequence[str] = ()
) -> Sentiment:
    """Lexicon polarity and the anger rules; earlier user messages reveal repetition.

    `lang` decides how a repeat is measured (characters for Chinese, words for
    English); both lexicons always run, because shoppers mix languages.
    """
    return assess(text, lexicon_polarity(text), repeats(text, previous_user_messages, lang))
