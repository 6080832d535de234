"""What the shopper sees is what was checked: the stream sends whole sentences that passed
the citation check and the output guard, and the streamed text is exactly the answer."""

import json
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.llm.base import ChatMessage, Deadline
from app.llm.fake import FakeLLM
from app.main import create_app
from app.rag.citations import SentenceSplitter
from tests.support.chunks import policy_chunk, seed
from tests.support.settings import fake_settings

pytestmark = pytest.mark.unit


CHUNKS = [
    policy_chunk("returns", "Items can be returned within 30 days of delivery."),
    policy_chunk("shipping", "Shipping is free on orders over 99 yuan."),
]


class ScriptedLLM(FakeLLM):
    """Writes `script`, a few characters per token, whatever it was asked; `delay` between
    tokens, as a real model takes."""

    def __init__(self, script: str, delay: float = 0.0) -> None:
        super().__init__()
        self.script = script
        self.delay = delay
        self.tokens_written = 0

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        max_tokens: int,
        stop: threading.Event | None = None,
        deadline: Deadline | None = None,
    ) -> Iterator[str]:
        for start in range(0, len(self.script), 3):
            if stop is not None and stop.is_set():
                return
            self.tokens_written += 1
            yield self.script[start : start + 3]
            time.sleep(self.delay)


@contextmanager
def _client(tmp_path: Path, llm: ScriptedLLM) -> Iterator[TestClient]:
    settings = fake_settings(tmp_path, retrieval={"min_dense_score": 0.0, "faq_direct_score": 0.99})
    with TestClient(create_app(settings, llm=llm)) as client:
        seed(client, CHUNKS)
        yield client


def _stream(client: TestClient, message: str) -> tuple[list[str], dict[str, object]]:
    tokens: list[str] = []
    done: dict[str, object] = {}
    with client.stream("POST", "/v1/chat/stream", json={"message": message}) as response:
        assert response.status_code == 200
        event = ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event:
                data = json.loads(line.removeprefix("data:").strip())
                if event == "token":
                    tokens.append(data["text"])
                elif event == "done":
                    done = data
                event = ""
    return tokens, done


QUESTION = "Can items be returned within 30 days of delivery?"


def test_an_unsupported_second_sentence_never_reaches_the_client(tmp_path: Path) -> None:
    llm = ScriptedLLM(
        "Items can be returned within 30 days of delivery [1]. "
        "Our unicorn mascot delivers parcels by rainbow overnight [2]. "
    )
    with _client(tmp_path, llm) as client:
        tokens, done = _stream(client, QUESTION)
    streamed = "".join(tokens)
    assert "30 days" in streamed
    for word in ("unicorn", "mascot", "rainbow"):
        assert word not in streamed, tokens
    assert streamed == done["answer"]
    assert done["outcome"] == "generated"
    assert [c["doc_id"] for c in done["citations"]] == ["returns"]  # type: ignore[attr-defined]


def test_the_json_reply_is_the_same_text(tmp_path: Path) -> None:
    llm = ScriptedLLM(
        "Items can be returned within 30 days of delivery [1]. "
        "Our unicorn mascot delivers parcels by rainbow overnight [2]. "
    )
    with _client(tmp_path, llm) as client:
        tokens, done = _stream(client, QUESTION)
        body = client.post("/v1/chat", json={"message": QUESTION}).json()
    assert body["answer"] == done["answer"] == "".join(tokens)


def test_a_refusal_streams_nothing_of_the_model_and_stops_it(tmp_path: Path) -> None:
    llm = ScriptedLLM(
        "I don't know. " + "Items can be returned within 30 days [1]. " * 20, delay=0.005
    )
    with _client(tmp_path, llm) as client:
        tokens, done = _stream(client, QUESTION)
    assert done["outcome"] == "refused"
    assert "30 days" not in "".join(tokens)
    assert "".join(tokens) == done["answer"]  # the refusal template, sent whole
    assert llm.tokens_written < len(llm.script) // 3  # the model was stopped early


def test_a_stranger_email_stops_the_answer_before_it_is_sent(tmp_path: Path) -> None:
    llm = ScriptedLLM(
        "Items can be returned within 30 days of delivery [1]. "
        "Write to someone.else@example.org about returns within 30 days [1]. "
    )
    with _client(tmp_path, llm) as client:
        tokens, done = _stream(client, QUESTION)
    streamed = "".join(tokens)
    assert "example.org" not in streamed
    assert streamed == done["answer"]
    assert "30 days" in streamed


def test_sentences_come_out_whole_with_markers_that_arrive_later() -> None:
    splitter = SentenceSplitter()
    out = []
    for piece in ["Returns take 30 da", "ys. [", "1] Shipping costs $3", ".50 here.", " Done"]:
        out += splitter.feed(piece)
    assert out == ["Returns take 30 days. [1]", "Shipping costs $3.50 here."]
    assert splitter.flush() == ["Done"]


def test_chinese_sentences_are_cut_at_their_own_punctuation() -> None:
    splitter = SentenceSplitter()
    out = splitter.feed("收到货后30天内可以退货[1]。运费")
    out += splitter.feed("由买家承担[2]。")
    assert out == ["收到货后30天内可以退货[1]。"]
    assert splitter.flush() == ["运费由买家承担[2]。"]
