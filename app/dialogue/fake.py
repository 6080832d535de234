"""A deterministic intent model for unit tests: a few keywords, no embeddings."""

from __future__ import annotations

import re

from app.dialogue.intent import Intent, IntentResult, explicit_human_request
from app.embeddings import Vectors

_RULES: list[tuple[Intent, re.Pattern[str]]] = [
    ("complaint", re.compile(r"complain|complaint|投诉|差评", re.IGNORECASE)),
    ("greeting", re.compile(r"^\s*(?:hi|hello|hey|thanks|thank you|你好|您好|谢谢)\b", re.I)),
    ("order_status", re.compile(r"where is my order|track|order status|物流|到哪|订单状态", re.I)),
    ("return_refund", re.compile(r"\breturn|refund|退货|退款|退掉", re.IGNORECASE)),
    ("recommendation", re.compile(r"recommend|suggest|推荐", re.IGNORECASE)),
]


class KeywordIntentClassifier:
    """human_agent, complaint, greeting, order_status, return_refund, recommendation by
    keyword; else a product question."""

    def predict(self, text: str, vector: Vectors | None = None) -> IntentResult:
        label: Intent = "product_question"
        if explicit_human_request(text):
            label = "human_agent"
        else:
            label = next((intent for intent, rule in _RULES if rule.search(text)), label)
        return IntentResult(label=label, confidence=1.0, scores={label: 1.0}, by_rule=True)
