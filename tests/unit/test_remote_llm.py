"""The OpenAI-compatible model backend against a scripted HTTP server (httpx MockTransport).

The real llama_cpp.server is in tests/integration/test_scale_out.py; here, what the
protocol allows a server to do that the real one rarely does on cue: cut a stream
short, fail, send an error event, go silent past the deadline.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from pydantic import ValidationError

from app.config import LLMSettings, Settings, StoreSettings
from app.llm.base import ChatMessage, LLMError, LLMTimeout
from app.llm.remote import RemoteLLM, cl100k_counter

pytestmark = pytest.mark.unit

URL = "http://model-box:8080/v1"
QUESTION = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hi?")]


def chunk(text: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if text is None else {"content": text}
    body = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body)}\r\n\r\n".encode()


WHOLE = [
    b": ping - 2026-01-01\r\n\r\n",
    chunk(),  # the role-only first chunk
    chunk("Hello"),
    chunk(" there"),
    chunk(finish="stop"),
    b"data: [DONE]\r\n\r\n",
]


class Body(httpx.SyncByteStream):
    """A response body sent piece by piece; `then` runs before each piece after the first."""

    def __init__(self, parts: list[bytes], then: Callable[[], None] = lambda: None) -> None:
        self.parts = parts
        self.then = then
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        for n, part in enumerate(self.parts):
            if n:
                self.then()
            yield part

    def close(self) -> None:
        self.closed = True


def remote(handler: Callable[[httpx.Request], httpx.Response], **settings: object) -> RemoteLLM:
    cfg = LLMSettings(backend="openai", base_url=URL, **settings)
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return RemoteLLM(cfg, lambda text: len(text.split()), client=client)


def test_streams_the_pieces_and_sends_the_settings() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=Body(WHOLE))

    llm = remote(handler, api_key="k-123", remote_model="served", seed=7, temperature=0.2)
    assert "".join(llm.stream(QUESTION, max_tokens=32)) == "Hello there"
    request = seen[0]
    assert str(request.url) == f"{URL}/chat/completions"
    assert request.headers["authorization"] == "Bearer k-123"
    body = json.loads(request.content)
    assert body["model"] == "served"
    assert body["stream"] is True
    assert (body["max_tokens"], body["seed"], body["temperature"]) == (32, 7, 0.2)
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi?"},
    ]
    assert llm.name == "served"
    assert llm.count_tokens("two words") == 2


def test_the_model_name_defaults_to_the_packaged_model_and_no_key_no_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=Body(WHOLE))

    llm = remote(handler, model="qwen2.5-coder-0.5b", n_ctx=2048)
    list(llm.stream(QUESTION, max_tokens=4))
    assert json.loads(seen[0].content)["model"] == "qwen2.5-coder-0.5b"
    assert "authorization" not in seen[0].headers
    assert llm.context_window == 2048


def test_a_stream_cut_short_is_an_error_not_a_short_answer() -> None:
    """llama_cpp.server interrupts a running stream with [DONE] when another request
    comes in (its default): no finish reason, so the answer is incomplete."""
    cut = [chunk("Hello"), b"data: [DONE]\r\n\r\n"]
    llm = remote(lambda _: httpx.Response(200, stream=Body(cut)))
    pieces: list[str] = []
    with pytest.raises(LLMError, match="ended the stream"):
        pieces.extend(llm.stream(QUESTION, max_tokens=32))
    assert pieces == ["Hello"]


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(500, text="CUDA out of memory"), "answered 500: CUDA out of memory"),
        (httpx.Response(401, json={"error": "bad key"}), "answered 401"),
        (
            httpx.Response(200, content=b'data: {"error": {"message": "boom"}}\r\n\r\n'),
            "model server error",
        ),
        (httpx.Response(200, content=b"data: {not json\r\n\r\n"), "no JSON"),
    ],
)
def test_server_failures_are_llm_errors(response: httpx.Response, message: str) -> None:
    llm = remote(lambda _: response)
    with pytest.raises(LLMError, match=message) as raised:
        list(llm.stream(QUESTION, max_tokens=8))
    assert not isinstance(raised.value, LLMTimeout)


def test_an_unreachable_server_is_an_llm_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(LLMError, match="connection refused"):
        list(remote(handler).stream(QUESTION, max_tokens=8))


def test_past_the_deadline_the_stream_ends_with_llm_timeout_and_closes() -> None:
    body = Body(WHOLE, then=lambda: time.sleep(0.2))  # each piece later than the deadline
    llm = remote(lambda _: httpx.Response(200, stream=body), timeout_s=0.05)
    pieces: list[str] = []
    with pytest.raises(LLMTimeout):
        pieces.extend(llm.stream(QUESTION, max_tokens=32))
    assert pieces == []
    assert body.closed


def test_a_set_stop_event_ends_the_stream_and_closes_the_connection() -> None:
    stop = threading.Event()
    body = Body(WHOLE)
    llm = remote(lambda _: httpx.Response(200, stream=body))
    pieces: list[str] = []
    for piece in llm.stream(QUESTION, max_tokens=32, stop=stop):
        pieces.append(piece)
        stop.set()
    assert pieces == ["Hello"]
    assert body.closed


def test_cl100k_estimate_counts_tokens_offline() -> None:
    count = cl100k_counter()
    assert count("") == 0
    assert 0 < count("How long do I have to return something?") < 15
    assert count("退货政策" * 10) > count("退货政策")


def test_remote_backends_need_their_urls() -> None:
    with pytest.raises(ValidationError, match="SHOPDESK_LLM__BASE_URL"):
        LLMSettings(backend="openai")
    with pytest.raises(ValidationError, match="SHOPDESK_LLM__BASE_URL"):
        LLMSettings(backend="openai", base_url="gpu-box:8080")
    with pytest.raises(ValidationError, match="SHOPDESK_STORE__URL"):
        StoreSettings(backend="chroma-http")
    with pytest.raises(ValidationError, match="SHOPDESK_STORE__URL"):
        StoreSettings(backend="chroma-http", url="http://chroma-box:8000/api/v2")


def test_the_scale_out_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOPDESK_LLM__BACKEND", "openai")
    monkeypatch.setenv("SHOPDESK_LLM__BASE_URL", URL)
    monkeypatch.setenv("SHOPDESK_LLM__API_KEY", "k-123")
    monkeypatch.setenv("SHOPDESK_STORE__BACKEND", "chroma-http")
    monkeypatch.setenv("SHOPDESK_STORE__URL", "http://chroma-box:8000")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://shopdesk@db-box/shopdesk")
    settings = Settings()
    assert settings.llm.base_url == URL
    assert settings.llm.api_key is not None
    assert settings.llm.api_key.get_secret_value() == "k-123"
    assert "k-123" not in repr(settings)
    assert settings.store.url == "http://chroma-box:8000"
    assert settings.db.url == "postgresql+psycopg://shopdesk@db-box/shopdesk"
