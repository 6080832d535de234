"""Text the model reads but must not obey: retrieved passages and the customer's message.

Two defences before the prompt is built:
- the chat template's control tokens (`<|im_start|>`, `<|endoftext|>`…) and our own
  passage delimiters are taken out of untrusted text, so a document or a message cannot
  open a new system turn or close the passage block early (the prompt is tokenised with
  special tokens parsed, so `<|im_start|>system` inside a passage would be a real turn);
- a sentence in a passage that addresses the assistant ("ignore previous instructions",
  "系统提示：…", "reveal your system prompt") is replaced by a marker, with the rest of
  its line. Shop documents describe products and rules; they have no reason to give the
  assistant orders.

The customer's message keeps its words (it is the question), only the tokens go.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PASSAGES_OPEN = "<<<PASSAGES"
PASSAGES_CLOSE = "PASSAGES>>>"
REMOVED = "[…]"

_CONTROL_TOKENS = re.compile(
    r"<\|[^|<>\s]{1,32}\|>"  # ChatML / Qwen / Llama-3 style: <|im_start|>, <|eot_id|>
    r"|</?s>|\[/?INST\]|<<\s*/?SYS\s*>>"  # Llama-2 / Mistral style
    r"|<{3}\s*PASSAGES|PASSAGES\s*>{3}",  # our own delimiters
    re.IGNORECASE,
)

_ADDRESSING_THE_ASSISTANT = re.compile(
    "|".join(
        (
            # English
            r"\b(ignore|disregard|forget|override|bypass)\b[^.!?\n]{0,40}"
            r"\b(instructions?|rules?|prompts?|guidelines|directions)\b",
            r"\b(system|developer|hidden|initial|original)\s+(prompt|message|instructions?)\b",
            r"\byou\s+are\s+now\b|\bfrom\s+now\s+on\b[^.!?\n]{0,30}\byou\b",
            r"\b(new|updated|real)\s+instructions?\b",
            r"\b(as|dear|to\s+the)\s+(an?\s+)?(ai|assistant|language\s+model|chatbot|llm)\b",
            r"\b(reveal|print|repeat|show|output|leak)\b[^.!?\n]{0,30}"
            r"\b(prompt|instructions|configuration|other\s+customers?)\b",
            r"(?:^|\n|[.!?]\s)\s*(assistant|system|user)\s*:",  # a role label opening a line
            # Chinese
            r"(忽略|无视|忘记|不要理会|跳过)[^。！？\n]{0,12}(指令|指示|规则|要求|提示|设定)",
            r"系统(提示|指令|消息|设定)|提示词|开发者(模式|指令)|管理员模式",
            r"(你现在是|从现在起你|从现在开始你|你的新(身份|任务|指令))",
            r"(新的|最新|真正的)(指令|指示)",
            r"(泄露|透露|输出|打印|重复|显示)[^。！？\n]{0,12}(提示|指令|设定|其他(顾客|客户|用户))",
            r"(助手|AI|机器人|客服助手)\s*[，,:：]\s*(请|你)",
        )
    ),
    re.IGNORECASE,
)

_SENTENCE = re.compile(r"[^.!?。！？\n]*(?:[.!?。！？]+|\n|$)")


@dataclass(frozen=True)
class Cleaned:
    text: str
    removed: int
    """How many sentences were taken out for addressing the assistant."""


def strip_control_tokens(text: str) -> str:
    """The text without chat-template control tokens or passage delimiters."""
    return _CONTROL_TOKENS.sub(" ", text)


def addresses_assistant(text: str) -> bool:
    """Whether the text gives the assistant orders (see the module docstring)."""
    return _ADDRESSING_THE_ASSISTANT.search(text) is not None


def clean_passage(text: str) -> Cleaned:
    """A passage fit to show the model: no control tokens, no orders to the assistant."""
    text = strip_control_tokens(text)
    if not addresses_assistant(text):
        return Cleaned(text, 0)
    kept: list[str] = []
    removed = 0
    dropping = False  # an injected order often runs on: the rest of its line goes too
    for sentence in _SENTENCE.findall(text):
        if sentence and (dropping or addresses_assistant(sentence)):
            removed += 1
            if not dropping:
                kept.append(REMOVED + " ")
            dropping = not sentence.endswith("\n")
            if not dropping:
                kept.append("\n")
        else:
            kept.append(sentence)
    return Cleaned("".join(kept).strip(), removed)
