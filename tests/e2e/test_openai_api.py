"""The OpenAI-compatible API through the official `openai` Python client, against the
session's real server (sample shop, 1.5B model).

What a shop's existing OpenAI integration would do: list the models, ask with and
without streaming, read ShopDesk's extra fields (`citations`, `session_id`…) from the
client's objects, and get the client's own exceptions, with ShopDesk's message, for bad
requests. Only one question reaches the model (the streamed one, kept to the policies by
a filter so that no FAQ answers it in one piece); the others are answered from the FAQ
or refused, which costs no generation.
"""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def client(server: str) -> openai.OpenAI:
    # ShopDesk's chat routes take no API key; the client insists on one. No retries: a
    # 4xx or 5xx must show as it came.
    return openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    ids = [m.id for m in client.models.list()]
    assert len(ids) == 2, ids
    assert ids[1] == "shopdesk", ids
    served = ids[0]
    assert served.startswith("qwen2.5-coder-1.5b"), ids  # the loaded GGUF, by its name
    return served


def _extra(obj: Any) -> dict[str, Any]:
    """The fields OpenAI's schema does not have, which the client keeps as extras."""
    extra: dict[str, Any] = obj.model_extra or {}
    return extra


def test_a_completion_carries_the_answer_and_its_citations(
    client: openai.OpenAI, model: str, server: str
) -> None:
    done = client.chat.completions.create(
        model="shopdesk",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is your return policy?"},
        ],
    )
    assert done.object == "chat.completion"
    assert done.model == model  # the alias answers with the loaded model
    assert done.choices[0].finish_reason == "stop"
    answer = done.choices[0].message.content
    assert done.choices[0].message.role == "assistant"
    assert answer
    extra = _extra(done)
    assert extra["outcome"] in {"faq", "generated"}, extra
    cited = {c["doc_id"] for c in extra["citations"]}
    assert cited & {"policy-returns-en", "faq-en-04"}, extra
    assert {"n", "doc_id", "title", "source", "snippet"} == set(extra["citations"][0])

    # `session_id` goes back as an extra field of the request and keeps the conversation
    again = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "How much does shipping cost?"}],
        extra_body={"session_id": extra["session_id"]},
    )
    assert _extra(again)["session_id"] == extra["session_id"]
    transcript = httpx.get(f"{server}/v1/sessions/{extra['session_id']}", timeout=30).json()
    assert [m["role"] for m in transcript["messages"]] == ["user", "assistant"] * 2
    assert transcript["messages"][1]["text"] == answer


def test_the_stream_sends_checked_pieces_then_the_citations(
    client: openai.OpenAI, model: str
) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "How long is the warranty on earbuds?"}],
            stream=True,
            stream_options={"include_usage": True},
            extra_body={"filters": {"kind": "policy"}},  # the model answers, not the FAQ
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    pieces = [c.choices[0].delta.content for c in chunks if c.choices]
    assert any(pieces), pieces  # checked sentences arrive as they pass
    final = next(c for c in chunks if c.choices and c.choices[0].finish_reason)
    assert final.choices[0].finish_reason == "stop"
    extra = _extra(final)
    assert extra["outcome"] == "generated", extra
    assert any(c["doc_id"] == "policy-warranty-en" for c in extra["citations"]), extra
    assert extra["answer"], extra  # the checked reply, which the citations' [n] refer to
    assert "[1]" in extra["answer"]
    assert "".join(p for p in pieces if p) == extra["answer"]  # shown = checked
    usage = chunks[-1].usage
    assert not chunks[-1].choices
    assert usage is not None
    assert usage.completion_tokens > 0


def test_an_unanswerable_question_is_refused(
    client: openai.OpenAI, model: str, server: str
) -> None:
    question = "What is the capital of Peru?"
    done = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": question}]
    )
    extra = _extra(done)
    assert (extra["outcome"], extra["citations"], extra["grounded"]) == ("refused", [], False)
    reference = httpx.post(f"{server}/v1/chat", json={"message": question}, timeout=300).json()
    assert done.choices[0].message.content == reference["answer"]  # the shop's refusal


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([], "invalid_request"),
        ([{"role": "system", "content": "Be brief."}], "no_user_message"),
        ([{"role": "user", "content": 42}], "invalid_request"),
        ([{"role": "user", "content": [{"type": "image_url", "url": "x"}]}], "invalid_request"),
        ([{"role": "user", "content": "   "}], "empty_message"),
        ("not a list", "invalid_request"),
    ],
)
def test_bad_input_raises_the_clients_exception_with_our_message(
    client: openai.OpenAI, model: str, messages: Any, code: str
) -> None:
    for stream in (False, True):
        with pytest.raises(openai.UnprocessableEntityError) as caught:
            client.chat.completions.create(model=model, messages=messages, stream=stream)
        error = caught.value
        assert error.status_code == 422
        assert error.code == code
        assert isinstance(error.body, dict)
        assert set(error.body) == {"code", "message"}  # ShopDesk's one shape, unwrapped
        assert error.body["message"] in str(error)  # the client shows our sentence


def test_an_unknown_model_is_a_not_found_error(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
        )
    assert caught.value.code == "model_not_found"
    assert model in str(caught.value)  # it names the model to ask for
