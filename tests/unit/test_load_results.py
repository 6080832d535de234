"""How the load bench and `make loadtest` classify one request's ending."""

import asyncio
import json

import httpx

from eval.bench.load import Result, deliberate, send

URL = "http://shop.test"


def _send(handler: httpx.MockTransport, *, stream: bool = False) -> Result:
    async def go() -> Result:
        async with httpx.AsyncClient(transport=handler) as client:
            return await send(client, URL, "hello", stream=stream)

    return asyncio.run(go())


def _json(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.MockTransport:
    return httpx.MockTransport(lambda _: httpx.Response(status, json=body, headers=headers))


def _events(*events: tuple[str, object]) -> httpx.MockTransport:
    text = "".join(
        f"event: {kind}\ndata: {data if isinstance(data, str) else json.dumps(data)}\n\n"
        for kind, data in events
    )
    return httpx.MockTransport(
        lambda _: httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})
    )


def _error(code: str) -> dict[str, object]:
    return {"error": {"code": code, "message": "..."}}


def test_an_answer_and_the_servers_deliberate_refusals_are_not_errors() -> None:
    answered = _send(_json(200, {"outcome": "faq"}))
    assert (answered.status, answered.outcome, deliberate(answered)) == (200, "faq", True)
    busy = _send(_json(503, _error("busy"), {"Retry-After": "5"}))
    assert (busy.status, busy.retry_after_s, deliberate(busy)) == (503, 5, True)
    limited = _send(_json(429, _error("rate_limited"), {"Retry-After": "2"}))
    assert (limited.status, deliberate(limited)) == (429, True)
    late = _send(_json(504, _error("model_timeout")))
    assert (late.status, late.error, deliberate(late)) == (504, None, True)


def test_other_failures_are_errors() -> None:
    assert not deliberate(_send(_json(500, _error("internal"))))
    assert not deliberate(_send(_json(503, _error("busy"))))  # a 503 without Retry-After
    gateway = _send(_json(504, _error("upstream")))  # a proxy's 504, not our deadline
    assert (gateway.status, deliberate(gateway)) == (504, False)


def test_a_streams_error_event_is_classified_like_the_status_it_stands_for() -> None:
    done = {"outcome": "generated"}
    ok = _send(_events(("token", {"text": "Hi."}), ("done", done), ("", "[DONE]")), stream=True)
    assert (ok.status, ok.outcome) == (200, "generated")
    busy = _send(_events(("error", _error("busy")), ("", "[DONE]")), stream=True)
    assert (busy.status, deliberate(busy)) == (503, True)
    late = _send(_events(("error", _error("model_timeout")), ("", "[DONE]")), stream=True)
    assert (late.status, deliberate(late)) == (504, True)
    broken = _send(_events(("error", _error("internal")), ("", "[DONE]")), stream=True)
    assert (broken.status, deliberate(broken)) == (502, False)
    cut = _send(_events(("token", {"text": "Hi."})), stream=True)
    assert (cut.status, deliberate(cut)) == (0, False)
